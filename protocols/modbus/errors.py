"""Modbus error tree (protocols layer). Every codec failure is one of these."""


class ModbusError(Exception):
    """Base of every Modbus failure raised by StoreGuard."""


class FrameError(ModbusError):
    """A frame is malformed: truncated, wrong length, wrong function, wrong unit or id."""


class CrcError(FrameError):
    """An RTU frame's CRC-16 does not match its contents (line noise, collision)."""


class ModbusExceptionResponse(ModbusError):
    """The device answered with a Modbus exception (function code | 0x80)."""

    NAMES = {
        0x01: "illegal function",
        0x02: "illegal data address",
        0x03: "illegal data value",
        0x04: "server device failure",
        0x05: "acknowledge",
        0x06: "server device busy",
        0x08: "memory parity error",
        0x0A: "gateway path unavailable",
        0x0B: "gateway target failed to respond",
    }

    def __init__(self, function: int, code: int) -> None:
        self.function = function
        self.code = code
        name = self.NAMES.get(code, "unknown exception")
        super().__init__(f"exception 0x{code:02X} ({name}) for function 0x{function:02X}")
