"""A background pass run every so often in a thread of each central worker (infrastructure).

The timer loop, the notification loop and the retention job are each a `PeriodicWorker`:
`run_once` every `interval_s`, at once after `wake()`, until `stop()`. A pass that fails
never ends the thread: a database that is unreachable is logged once (and its return), any
other failure is logged with its traceback, and the next pass follows as usual.
"""

from __future__ import annotations

import logging
import threading
from abc import ABC, abstractmethod

from sqlalchemy.exc import OperationalError

log = logging.getLogger(__name__)


class PeriodicWorker(ABC):
    def __init__(self, *, name: str, what: str, interval_s: float, stop_timeout_s: float = 10.0) -> None:
        self._what = what  # for the log: "timer loop", "retention job", ...
        self._interval_s = interval_s
        self._stop_timeout_s = stop_timeout_s
        self._stopping = threading.Event()
        self._wake = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    @abstractmethod
    def run_once(self) -> object:
        """One pass; what it returns is for tests and callers, the loop ignores it."""

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float | None = None) -> None:
        self._stopping.set()
        self._wake.set()
        if self._thread.is_alive():
            self._thread.join(self._stop_timeout_s if timeout is None else timeout)

    def wake(self) -> None:
        """Run the next pass now rather than at the end of the interval."""
        self._wake.set()

    def _run(self) -> None:
        failing = False
        while not self._stopping.is_set():
            try:
                self.run_once()
                if failing:
                    log.info("%s: database available again", self._what)
                failing = False
            except OperationalError as exc:
                if not failing:
                    log.error("%s: database unavailable, retrying: %s", self._what, exc)
                failing = True
            except Exception:  # noqa: BLE001 - the loop must survive a bug in one pass
                log.exception("%s: a pass failed; retrying", self._what)
            self._wake.wait(self._interval_s)
            self._wake.clear()
