"""Simulated ESC/POS receipt printer (simulators layer): answers `DLE EOT n` byte-exactly.

The answer bytes come from the protocols.escpos codec, so the simulator and the edge decode
the same bits. `DLE ENQ n` clears a recoverable error (the autocutter) as an Epson printer
does once its cause is removed. Everything else on the line is print data and is ignored.
"""

from __future__ import annotations

from dataclasses import dataclass

from protocols.escpos import ErrorStatus, OfflineCauseStatus, PaperStatus, PrinterStatus, StatusKind
from protocols.escpos.status import DLE, ENQ, EOT

COMMAND_LENGTH = 3  # DLE EOT n, DLE ENQ n


@dataclass(slots=True)
class PrinterState:
    """What is physically wrong with the printer; set by tests or a fault injector."""

    cover_open: bool = False
    paper_near_end: bool = False
    paper_end: bool = False
    cutter_error: bool = False
    unrecoverable_error: bool = False
    head_overheat: bool = False
    feed_button: bool = False
    drawer_pin3: bool = False

    @property
    def offline(self) -> bool:
        return (
            self.cover_open
            or self.paper_end
            or self.feed_button
            or self.cutter_error
            or self.unrecoverable_error
            or self.head_overheat
        )

    @property
    def error(self) -> bool:
        return self.cutter_error or self.unrecoverable_error or self.head_overheat

    def status_byte(self, kind: StatusKind | int) -> int:
        """The answer to `DLE EOT kind` in this state."""
        match StatusKind(kind):
            case StatusKind.PRINTER:
                return PrinterStatus(drawer_pin3=self.drawer_pin3, offline=self.offline).to_byte()
            case StatusKind.OFFLINE_CAUSE:
                return OfflineCauseStatus(
                    cover_open=self.cover_open,
                    feed_button=self.feed_button,
                    paper_end_stop=self.paper_end,
                    error=self.error,
                ).to_byte()
            case StatusKind.ERROR:
                return ErrorStatus(
                    autocutter=self.cutter_error,
                    unrecoverable=self.unrecoverable_error,
                    auto_recoverable=self.head_overheat,
                ).to_byte()
            case StatusKind.PAPER:
                return PaperStatus(near_end=self.paper_near_end, end=self.paper_end).to_byte()


class SimulatedPrinter:
    """An Epson-compatible printer's real-time command interpreter."""

    def __init__(self, state: PrinterState | None = None) -> None:
        self.state = state or PrinterState()
        self.recoveries = 0

    def request_length(self, buffer: bytes) -> int | None:
        """Bytes of the next unit in `buffer` (a command or a run of print data); None = wait."""
        if not buffer:
            return None
        if buffer[0] != DLE:
            nxt = buffer.find(DLE)
            return len(buffer) if nxt < 0 else nxt
        if len(buffer) < 2:
            return None
        if buffer[1] not in (EOT, ENQ):
            return 1  # a DLE in print data
        return COMMAND_LENGTH if len(buffer) >= COMMAND_LENGTH else None

    def handle(self, request: bytes) -> bytes:
        """Answer every real-time command in `request`; print data gets no answer."""
        out = bytearray()
        i = 0
        while i + COMMAND_LENGTH <= len(request):
            dle, cmd, n = request[i : i + COMMAND_LENGTH]
            if dle == DLE and cmd == EOT and 1 <= n <= 4:
                out.append(self.state.status_byte(n))
                i += COMMAND_LENGTH
            elif dle == DLE and cmd == ENQ and n in (1, 2):
                self.state.cutter_error = False  # the only recoverable error we model
                self.recoveries += 1
                i += COMMAND_LENGTH
            else:
                i += 1
        return bytes(out)
