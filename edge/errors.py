"""The edge's exception tree (edge layer). Every failure the edge raises is one of these.

    EdgeError
    ├── EdgeConfigError          a store config the edge cannot run (unknown profile, bad override)
    └── TransportError           one request to one device failed; the poll fails, the edge runs on
        ├── DeviceTimeout        no answer within the timeout
        ├── BadFrame             an answer that is not a valid response (truncated, wrong unit/function)
        │   └── BadCrc           an RTU frame whose CRC-16 does not match (noise, collision)
        ├── DeviceException      the device answered with a Modbus exception code
        └── LinkDown             the serial port or TCP connection is not usable

Third-party errors (pyserial, OSError, protocols.modbus codec errors) are translated where
they happen, in the transports and the poller, and chained with ``from exc``.
"""

from __future__ import annotations

from protocols.modbus.errors import ModbusExceptionResponse


class EdgeError(Exception):
    """Base of every error raised by the edge package."""


class EdgeConfigError(EdgeError, ValueError):
    """The edge configuration cannot be run: names the device (or bus), the rule and the reason."""


class TransportError(EdgeError):
    """One request to one device failed. Marks that poll failed; never stops the edge."""


class DeviceTimeout(TransportError):
    """The device did not answer within its timeout."""


class BadFrame(TransportError):
    """The answer is not a valid response to the request (truncated, wrong unit, wrong function)."""


class BadCrc(BadFrame):
    """An RTU response whose CRC-16 does not match its contents."""


class DeviceException(TransportError):
    """The device answered with a Modbus exception response."""

    def __init__(self, function: int, code: int) -> None:
        self.function = function
        self.code = code
        name = ModbusExceptionResponse.NAMES.get(code, "unknown exception")
        super().__init__(f"Modbus exception 0x{code:02X} ({name}) for function 0x{function:02X}")


class LinkDown(TransportError):
    """The serial port or TCP connection is closed, unplugged or refused."""
