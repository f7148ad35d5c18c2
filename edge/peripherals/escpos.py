"""ESC/POS real-time status poller (edge layer): DLE EOT 1..4 -> printer conditions.

Each poll sends the four requests one at a time (one in flight, each with its own timeout)
and reads one status byte per request; ``protocols.escpos.printer_conditions`` decodes them.
All four conditions are status-type: they follow the bytes on every poll. A byte that is
not a status byte (noise, print data looped back) fails the poll as a bad frame.
"""

from __future__ import annotations

from edge.errors import BadFrame
from edge.metrics import RequestCounters
from edge.peripherals.device import PollResult
from edge.peripherals.transport import ByteTransport, count_failure, counted_exchange
from protocols.escpos import EscPosError, PrinterCondition, StatusKind, build_status_request, printer_conditions


def _one_byte(buffer: bytes) -> int | None:
    return 1 if buffer else None


class EscPosPoller:
    requests_per_poll = len(StatusKind)

    async def poll(
        self, transport: ByteTransport, timeout: float, counters: tuple[RequestCounters, ...]
    ) -> PollResult:
        answers: dict[int, bytes] = {}
        for kind in StatusKind:
            answers[kind] = await counted_exchange(transport, build_status_request(kind), _one_byte, timeout, counters)
        try:
            conditions = printer_conditions(answers)
        except EscPosError as exc:
            error = BadFrame(f"ESC/POS: {exc}")
            count_failure(counters, error)
            raise error from exc
        status = " ".join(f"{answers[k][0]:02X}" for k in StatusKind)
        return PollResult(
            conditions={c.value: getattr(conditions, c.value) for c in PrinterCondition},
            evidence={"status_bytes": status},
        )

    def latch(self, condition: str) -> None:
        """ESC/POS conditions are all status-type: nothing is latched."""
