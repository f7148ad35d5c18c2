"""Simulator errors (simulators layer): one tree for everything the simulators refuse."""

from __future__ import annotations


class SimulatorError(Exception):
    """Base of every failure raised by the simulators."""


class UnknownDeviceError(SimulatorError, KeyError):
    """No simulated device has this id."""

    def __init__(self, device_id: str) -> None:
        self.device_id = device_id
        super().__init__(device_id)

    def __str__(self) -> str:
        return f"no simulated device {self.device_id!r}"


class FaultError(SimulatorError, ValueError):
    """A fault name is unknown, does not apply to the device, or carries a bad parameter."""


class PointError(SimulatorError, ValueError):
    """A point name is unknown, or a value cannot be encoded into its registers."""


class SimulatorConfigError(SimulatorError, ValueError):
    """A simulator config file is missing, unreadable or invalid: names the file, field and reason."""

    def __init__(self, path: str, where: str, reason: str) -> None:
        self.path = path
        self.where = where
        self.reason = reason
        super().__init__(f"{path}: {where}: {reason}")
