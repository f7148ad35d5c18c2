"""Test doubles for the peripheral edge: the byte-exact simulated devices on an in-memory line."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable

from edge.clock import Clock, FakeClock
from edge.config import BusConfig, EdgeConfig
from edge.errors import TransportError
from edge.model import FaultChange
from edge.peripherals import ByteTransport, InMemoryByteTransport
from edge.runtime import Edge
from simulators.peripherals import SimulatedBillValidator, SimulatedPrinter
from tests.unit.edge.fakes import REGISTRY, RecordingSink

PRINTER = "epson-tm-t88-escpos"
VALIDATOR = "generic-cctalk-bill-validator"


class Line:
    """The far end of a serial line: a simulated device, optionally echoing, with scripted faults.

    ``faults`` are one-shot, in order: "silent", "garbage" (flip the last byte), or a
    TransportError to raise. ``dead`` makes every request go unanswered.
    """

    def __init__(self, device: SimulatedPrinter | SimulatedBillValidator, *, echo: bool = False) -> None:
        self.device = device
        self.echo = echo
        self.dead = False
        self.faults: deque[str | TransportError] = deque()
        self.requests: list[bytes] = []

    def handle(self, request: bytes) -> bytes | None:
        self.requests.append(request)
        echo = request if self.echo else b""
        if self.dead:
            return echo or None
        fault = self.faults.popleft() if self.faults else None
        if isinstance(fault, TransportError):
            raise fault
        if fault == "silent":
            return echo or None
        answer = self.device.handle(request)
        if fault == "garbage" and answer:
            answer = answer[:-1] + bytes([answer[-1] ^ 0x5A])
        return echo + answer


def factory(lines: dict[str, Line], clock: Clock) -> Callable[[BusConfig, object], ByteTransport]:
    def build(bus: BusConfig, serial: object) -> ByteTransport:
        return InMemoryByteTransport(lines[bus.name].handle, clock, name=bus.name)

    return build


def printer_bus(name: str = "printer-1", device_id: str = "printer-01", **device: object) -> BusConfig:
    return BusConfig.model_validate(
        {"name": name, "transport": "escpos", "port": "/dev/ttyFAKE0", "poll_interval_s": 1.0,
         "devices": [{"id": device_id, "unit": 1, "profile": PRINTER, **device}]}
    )  # fmt: skip


def validator_bus(name: str = "bill-1", device_id: str = "bill-01", *, echo: str = "auto", **device: object) -> BusConfig:
    return BusConfig.model_validate(
        {"name": name, "transport": "cctalk", "port": "/dev/ttyFAKE1", "poll_interval_s": 1.0, "echo": echo,
         "devices": [{"id": device_id, "unit": 40, "profile": VALIDATOR, **device}]}
    )  # fmt: skip


def build_edge(
    buses: list[BusConfig], lines: dict[str, Line], clock: FakeClock, restored: list[FaultChange] | None = None
) -> tuple[Edge, RecordingSink]:
    sink = RecordingSink()
    edge = Edge(
        EdgeConfig(buses=buses),
        REGISTRY,
        sink,
        clock,
        restored_faults=restored or (),
        peripheral_transport_factory=factory(lines, clock),
    )
    return edge, sink


def fault(sink: RecordingSink, code: str, state: str = "raised") -> FaultChange:
    return next(f for f in sink.faults if f.fault_code == code and f.state.value == state)
