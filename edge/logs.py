"""Logging policy (edge layer): the first failure at ERROR, repeats at DEBUG, recovery at INFO.

A device or link that stays broken is a counter in the metrics, not a log flood.
"""

from __future__ import annotations

import logging


class FailureLog:
    def __init__(self, logger: logging.Logger, name: str) -> None:
        self._logger = logger
        self._name = name
        self.failing = False

    def failed(self, message: str) -> None:
        level = logging.DEBUG if self.failing else logging.ERROR
        self._logger.log(level, "%s: %s", self._name, message)
        self.failing = True

    def ok(self, message: str = "working again") -> None:
        if self.failing:
            self._logger.info("%s: %s", self._name, message)
        self.failing = False
