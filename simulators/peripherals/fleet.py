"""The simulated serial peripherals of a store and their faults (simulators layer), no I/O.

Each entry is a byte-exact printer or bill validator plus the faults injected into it; the
entry itself is what a ``PeripheralSerialServer`` serves (``offline`` makes it silent).
Printer faults set the printer's physical state (paper near end / end, cover open, cutter
error) for as long as they are active. Validator faults are events, as on a real validator:
``bill_jam`` reports an unsafe jam (ccTalk 6) and its clear resets the validator (how an
attendant clears a jam; the counter goes back to 0 and a still-full stacker is reported
again); ``stacker_full`` reports code 14 and its clear reports the stacker removed (11).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from protocols.cctalk import BillEventCode
from simulators.device import PointValue
from simulators.errors import UnknownDeviceError
from simulators.faults import ActiveFault, Fault, FaultSet, parse_fault
from simulators.peripherals.cctalk_validator import SimulatedBillValidator
from simulators.peripherals.escpos_printer import SimulatedPrinter
from simulators.peripherals.faults import ALIASES, peripheral_faults
from simulators.simulation import DeviceState, FaultState

@dataclass(slots=True)
class PeripheralEntry:
    device_id: str
    bus: str
    unit: int
    profile: str
    kind: str
    device: SimulatedPrinter | SimulatedBillValidator
    faults: FaultSet

    # --- what the serial server calls ----------------------------------------------------------

    def request_length(self, buffer: bytes) -> int | None:
        return self.device.request_length(buffer)

    def handle(self, request: bytes) -> bytes:
        if Fault.OFFLINE in self.faults:
            return b""  # a dead device: the host times out
        return self.device.handle(request)

    # --- fault effects ---------------------------------------------------------------------------

    def started(self, fault: Fault) -> None:
        if isinstance(self.device, SimulatedPrinter):
            self._printer_state()
        elif fault is Fault.BILL_JAM:
            self.device.inject(BillEventCode.UNSAFE_JAM)
        elif fault is Fault.STACKER_FULL:
            self.device.inject(BillEventCode.STACKER_FULL)

    def ended(self, fault: Fault) -> None:
        if isinstance(self.device, SimulatedPrinter):
            self._printer_state()
        elif fault is Fault.BILL_JAM:
            self.device.reset()
            if Fault.STACKER_FULL in self.faults:
                self.device.inject(BillEventCode.STACKER_FULL)
        elif fault is Fault.STACKER_FULL:
            self.device.inject(BillEventCode.STACKER_REMOVED)

    def _printer_state(self) -> None:
        assert isinstance(self.device, SimulatedPrinter)
        state = self.device.state
        state.paper_near_end = Fault.PAPER_NEAR_END in self.faults
        state.paper_end = Fault.PAPER_END in self.faults
        state.cover_open = Fault.PRINTER_COVER_OPEN in self.faults
        state.cutter_error = Fault.CUTTER_ERROR in self.faults


class PeripheralLine:
    """Several peripherals on one serial line: each answers only what is addressed to it
    (ccTalk devices stay silent for another address; an ESC/POS port has one printer)."""

    def __init__(self, entries: list[PeripheralEntry]) -> None:
        if not entries:
            raise ValueError("a line needs at least one peripheral")
        self.entries = entries

    def request_length(self, buffer: bytes) -> int | None:
        return self.entries[0].request_length(buffer)

    def handle(self, request: bytes) -> bytes:
        return b"".join(entry.handle(request) for entry in self.entries)


class PeripheralFleet:
    """Peripherals by device id, with inject / clear / expire on an injected clock."""

    def __init__(self, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._entries: dict[str, PeripheralEntry] = {}

    def add(self, device_id: str, *, bus: str, unit: int, profile: str, kind: str) -> PeripheralEntry:
        if device_id in self._entries:
            raise ValueError(f"device {device_id!r} added twice")
        device: SimulatedPrinter | SimulatedBillValidator = (
            SimulatedPrinter() if kind == "printer" else SimulatedBillValidator(address=unit)
        )
        entry = PeripheralEntry(device_id, bus, unit, profile, kind, device, FaultSet(peripheral_faults(kind)))
        self._entries[device_id] = entry
        return entry

    def __contains__(self, device_id: object) -> bool:
        return device_id in self._entries

    def entry(self, device_id: str) -> PeripheralEntry:
        try:
            return self._entries[device_id]
        except KeyError:
            raise UnknownDeviceError(device_id) from None

    def entries(self, bus: str | None = None) -> list[PeripheralEntry]:
        return [e for e in self._entries.values() if bus is None or e.bus == bus]

    def inject(
        self, device_id: str, fault: Fault | str, duration_s: float | None = None, *, code: int | None = None
    ) -> ActiveFault:
        entry = self.entry(device_id)
        parsed = parse_fault(ALIASES.get(str(fault), fault))
        active = entry.faults.inject(parsed, now=self._clock(), duration_s=duration_s, code=code)
        entry.started(parsed)
        return active

    def clear(self, device_id: str, fault: Fault | str) -> bool:
        entry = self.entry(device_id)
        parsed = parse_fault(ALIASES.get(str(fault), fault))
        cleared = entry.faults.clear(parsed)
        if cleared:
            entry.ended(parsed)
        return cleared

    def tick(self) -> None:
        """Clear the faults whose duration ran out, with their effects."""
        now = self._clock()
        for entry in self._entries.values():
            for fault in entry.faults.expire(now):
                entry.ended(fault)

    def state(self, device_id: str) -> DeviceState:
        entry = self.entry(device_id)
        now = self._clock()
        if isinstance(entry.device, SimulatedPrinter):
            s = entry.device.state
            points: dict[str, PointValue] = {
                "paper_near_end": s.paper_near_end, "paper_end": s.paper_end, "cover_open": s.cover_open,
                "cutter_error": s.cutter_error, "offline": s.offline,
            }  # fmt: skip
        else:
            events = entry.device.buffered_events()
            points = {"event_counter": events.counter, "last_event": events.results[0].b if events.counter else 0}
        return DeviceState(
            id=entry.device_id,
            bus=entry.bus,
            unit=entry.unit,
            profile=entry.profile,
            kind=entry.kind,
            points=points,
            faults=[FaultState(a.fault.value, a.remaining_s(now), a.code) for a in entry.faults.active()],
        )

    def states(self) -> list[DeviceState]:
        return [self.state(device_id) for device_id in self._entries]
