"""ESC/POS error tree (protocols layer). Every ESC/POS codec failure is one of these."""

from __future__ import annotations


class EscPosError(Exception):
    """Base of every ESC/POS failure raised by StoreGuard."""


class StatusByteError(EscPosError):
    """An answer to `DLE EOT n` is not a status byte: wrong length, or a fixed bit is wrong.

    Every real-time status byte has bit0 = 0, bit1 = 1, bit4 = 1 and bit7 = 0 (Epson ESC/POS),
    so anything else is line noise, print data echoed back, or a different device on the port.
    """

    def __init__(self, message: str, *, answer: bytes) -> None:
        self.answer = answer
        super().__init__(message)
