"""ESC/POS real-time status (protocols layer): `DLE EOT n` and `DLE ENQ n`. Pure.

`DLE EOT n` (0x10 0x04 n, n = 1..4) makes an Epson-compatible printer answer one status byte
at once, even while it is offline or its buffer is full. Bits 1 and 4 of every answer are
fixed at 1 and bits 0 and 7 at 0, so a healthy printer answers 0x12 to all four requests.
Only the bits StoreGuard acts on are decoded; the raw byte is kept on every status object.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import IntEnum, StrEnum

from protocols.escpos.errors import EscPosError, StatusByteError

DLE = 0x10
EOT = 0x04
ENQ = 0x05
FIXED_MASK = 0x93  # bits 7, 4, 1, 0
FIXED_VALUE = 0x12  # bits 4 and 1 set, 7 and 0 clear: also the "all OK" answer


class StatusKind(IntEnum):
    """The `n` of `DLE EOT n`: which status byte is requested."""

    PRINTER = 1
    OFFLINE_CAUSE = 2
    ERROR = 3
    PAPER = 4


class RecoverMode(IntEnum):
    """The `n` of `DLE ENQ n`: how a printer leaves a recoverable error (e.g. autocutter)."""

    RESTART = 1  # recover and reprint from the line where the error occurred
    CLEAR_BUFFERS = 2  # recover after clearing the receive and print buffers


def build_status_request(kind: StatusKind | int) -> bytes:
    """`DLE EOT n`: 0x10 0x04 n."""
    return bytes([DLE, EOT, StatusKind(kind)])


def build_recover_request(mode: RecoverMode | int = RecoverMode.CLEAR_BUFFERS) -> bytes:
    """`DLE ENQ n`: 0x10 0x05 n."""
    return bytes([DLE, ENQ, RecoverMode(mode)])


def _bit(byte: int, mask: int) -> bool:
    return bool(byte & mask)


@dataclass(frozen=True, slots=True)
class PrinterStatus:
    """`DLE EOT 1`: bit2 drawer kick-out connector pin 3 high, bit3 offline."""

    drawer_pin3: bool = False
    offline: bool = False

    def to_byte(self) -> int:
        return FIXED_VALUE | (0x04 if self.drawer_pin3 else 0) | (0x08 if self.offline else 0)


@dataclass(frozen=True, slots=True)
class OfflineCauseStatus:
    """`DLE EOT 2`: bit2 cover open, bit3 feed button pressed, bit5 stopped on paper end, bit6 error."""

    cover_open: bool = False
    feed_button: bool = False
    paper_end_stop: bool = False
    error: bool = False

    def to_byte(self) -> int:
        return (
            FIXED_VALUE
            | (0x04 if self.cover_open else 0)
            | (0x08 if self.feed_button else 0)
            | (0x20 if self.paper_end_stop else 0)
            | (0x40 if self.error else 0)
        )


@dataclass(frozen=True, slots=True)
class ErrorStatus:
    """`DLE EOT 3`: bit3 autocutter, bit5 unrecoverable, bit6 auto-recoverable (e.g. head overheat)."""

    autocutter: bool = False
    unrecoverable: bool = False
    auto_recoverable: bool = False

    def to_byte(self) -> int:
        return (
            FIXED_VALUE
            | (0x08 if self.autocutter else 0)
            | (0x20 if self.unrecoverable else 0)
            | (0x40 if self.auto_recoverable else 0)
        )


@dataclass(frozen=True, slots=True)
class PaperStatus:
    """`DLE EOT 4`: bits 2-3 roll paper near end (0x0C), bits 5-6 paper end (0x60).

    Epson sets both bits of a pair together; a printer that sets only one is read as the
    condition being present, since missing a paper-end is worse than a false task.
    """

    near_end: bool = False
    end: bool = False

    def to_byte(self) -> int:
        return FIXED_VALUE | (0x0C if self.near_end else 0) | (0x60 if self.end else 0)


def _status_byte(answer: bytes | int) -> int:
    if isinstance(answer, int):
        if not 0 <= answer <= 0xFF:
            raise StatusByteError(f"status value {answer} is not a byte", answer=b"")
        raw = bytes([answer])
    else:
        raw = bytes(answer)
    if len(raw) != 1:
        raise StatusByteError(f"expected one status byte, got {len(raw)}: {raw.hex(' ')}", answer=raw)
    byte = raw[0]
    if byte & FIXED_MASK != FIXED_VALUE:
        raise StatusByteError(
            f"0x{byte:02X} is not a DLE EOT status byte (needs bit0=0, bit1=1, bit4=1, bit7=0)", answer=raw
        )
    return byte


def parse_printer_status(answer: bytes | int) -> PrinterStatus:
    b = _status_byte(answer)
    return PrinterStatus(drawer_pin3=_bit(b, 0x04), offline=_bit(b, 0x08))


def parse_offline_cause(answer: bytes | int) -> OfflineCauseStatus:
    b = _status_byte(answer)
    return OfflineCauseStatus(
        cover_open=_bit(b, 0x04), feed_button=_bit(b, 0x08), paper_end_stop=_bit(b, 0x20), error=_bit(b, 0x40)
    )


def parse_error_status(answer: bytes | int) -> ErrorStatus:
    b = _status_byte(answer)
    return ErrorStatus(autocutter=_bit(b, 0x08), unrecoverable=_bit(b, 0x20), auto_recoverable=_bit(b, 0x40))


def parse_paper_status(answer: bytes | int) -> PaperStatus:
    b = _status_byte(answer)
    return PaperStatus(near_end=_bit(b, 0x0C), end=_bit(b, 0x60))


AnyStatus = PrinterStatus | OfflineCauseStatus | ErrorStatus | PaperStatus


def parse_status(kind: StatusKind | int, answer: bytes | int) -> AnyStatus:
    """Decode the answer to `DLE EOT kind`. Raises StatusByteError for a non-status byte."""
    match StatusKind(kind):
        case StatusKind.PRINTER:
            return parse_printer_status(answer)
        case StatusKind.OFFLINE_CAUSE:
            return parse_offline_cause(answer)
        case StatusKind.ERROR:
            return parse_error_status(answer)
        case StatusKind.PAPER:
            return parse_paper_status(answer)


class PrinterCondition(StrEnum):
    """StoreGuard conditions derived from the four status bytes (DEVICES.md §4)."""

    PAPER_NEAR_END = "paper_near_end"  # staff task
    PAPER_END = "paper_end"
    COVER_OPEN = "cover_open"
    CUTTER_ERROR = "cutter_error"  # repair ticket
    UNRECOVERABLE_ERROR = "unrecoverable_error"  # repair ticket
    AUTO_RECOVERABLE_ERROR = "auto_recoverable_error"  # e.g. head overheat; clears by itself
    OFFLINE = "offline"


@dataclass(frozen=True, slots=True)
class PrinterConditions:
    paper_near_end: bool = False
    paper_end: bool = False
    cover_open: bool = False
    cutter_error: bool = False
    unrecoverable_error: bool = False
    auto_recoverable_error: bool = False
    offline: bool = False

    @property
    def active(self) -> frozenset[PrinterCondition]:
        return frozenset(c for c in PrinterCondition if getattr(self, c.value))

    @property
    def healthy(self) -> bool:
        return not self.active


def printer_conditions(status_bytes: Mapping[int, bytes | int]) -> PrinterConditions:
    """Map the answers to `DLE EOT 1..4` (keyed by n) to StoreGuard conditions.

    Paper end is reported by either the paper sensor (n=4) or the offline cause (n=2), cover
    open by the offline cause. Raises EscPosError when an answer is missing or invalid.
    """
    missing = [int(k) for k in StatusKind if k not in status_bytes]
    if missing:
        raise EscPosError(f"DLE EOT answers missing for n = {missing}")
    printer = parse_printer_status(status_bytes[StatusKind.PRINTER])
    cause = parse_offline_cause(status_bytes[StatusKind.OFFLINE_CAUSE])
    error = parse_error_status(status_bytes[StatusKind.ERROR])
    paper = parse_paper_status(status_bytes[StatusKind.PAPER])
    return PrinterConditions(
        paper_near_end=paper.near_end,
        paper_end=paper.end or cause.paper_end_stop,
        cover_open=cause.cover_open,
        cutter_error=error.autocutter,
        unrecoverable_error=error.unrecoverable,
        auto_recoverable_error=error.auto_recoverable,
        offline=printer.offline,
    )
