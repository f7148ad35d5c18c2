"""Injectable faults (simulators layer): names, which devices they apply to, and their timing.

Behaviour faults (door open, dead compressor, printer out of paper...) change what a
device model writes into its registers. Transport faults change how a server frames the
answer (bad CRC, half a frame, another unit id) or whether it answers at all, so the edge's
robustness can be tested against the failures real buses produce.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from protocols.modbus import ModbusExceptionResponse
from simulators.errors import FaultError


class Fault(StrEnum):
    # refrigeration controllers
    DOOR_OPEN = "door_open"
    COMPRESSOR_DEAD = "compressor_dead"
    PROBE_FAULT = "probe_fault"
    # self-checkout lanes
    PAPER_NEAR_END = "paper_near_end"
    PAPER_END = "paper_end"
    PRINTER_COVER_OPEN = "printer_cover_open"
    CUTTER_ERROR = "cutter_error"
    BILL_JAM = "bill_jam"
    STACKER_FULL = "stacker_full"
    LANE_DOWN = "lane_down"
    SCANNER_FAULT = "scanner_fault"
    # UPS
    ON_BATTERY = "on_battery"  # mains lost: the battery drains
    REPLACE_BATTERY = "replace_battery"  # RB: a worn battery holding half its runtime
    UPS_OVERLOAD = "overload"  # output load above 100 %
    # any device
    OFFLINE = "offline"  # stops answering
    GARBAGE = "garbage"  # answers with a bad CRC (RTU) or a corrupt MBAP header (TCP)
    TRUNCATED = "truncated"  # answers with the first half of the frame
    EXCEPTION = "exception"  # answers every request with a Modbus exception (`code`)
    WRONG_UNIT = "wrong_unit"  # answers from another unit id


REFRIGERATION_FAULTS = frozenset({Fault.DOOR_OPEN, Fault.COMPRESSOR_DEAD, Fault.PROBE_FAULT})
LANE_FAULTS = frozenset(
    {
        Fault.PAPER_NEAR_END,
        Fault.PAPER_END,
        Fault.PRINTER_COVER_OPEN,
        Fault.CUTTER_ERROR,
        Fault.BILL_JAM,
        Fault.STACKER_FULL,
        Fault.LANE_DOWN,
        Fault.SCANNER_FAULT,
    }
)
UPS_FAULTS = frozenset({Fault.ON_BATTERY, Fault.REPLACE_BATTERY, Fault.UPS_OVERLOAD})
# Framing faults in the order they win when several are active.
FRAMING_FAULTS = (Fault.TRUNCATED, Fault.GARBAGE, Fault.WRONG_UNIT)
DEVICE_FAULTS = frozenset({Fault.OFFLINE, Fault.EXCEPTION, *FRAMING_FAULTS})
DEFAULT_EXCEPTION_CODE = 0x04


def faults_for_kind(kind: str) -> frozenset[Fault]:
    """The faults a device of this profile kind can be given."""
    if kind == "refrigeration_controller":
        return REFRIGERATION_FAULTS | DEVICE_FAULTS
    if kind == "self_checkout_lane":
        return LANE_FAULTS | DEVICE_FAULTS
    if kind == "ups":
        return UPS_FAULTS | DEVICE_FAULTS
    return DEVICE_FAULTS


def parse_fault(name: Fault | str) -> Fault:
    try:
        return Fault(name)
    except ValueError:
        known = ", ".join(f.value for f in Fault)
        raise FaultError(f"unknown fault {name!r} (known: {known})") from None


def check_exception_code(code: int) -> int:
    if code not in ModbusExceptionResponse.NAMES:
        known = ", ".join(f"0x{c:02X}" for c in ModbusExceptionResponse.NAMES)
        raise FaultError(f"exception code {code} is not a Modbus exception code ({known})")
    return code


@dataclass(frozen=True, slots=True)
class ActiveFault:
    fault: Fault
    since: float  # clock seconds (monotonic) when injected
    until: float | None  # clock seconds when it clears by itself; None = until cleared
    code: int | None = None  # the exception code of an `exception` fault

    def remaining_s(self, now: float) -> float | None:
        return None if self.until is None else max(0.0, self.until - now)


class FaultSet:
    """The faults active on one device. Times are seconds of the injected clock."""

    def __init__(self, allowed: frozenset[Fault]) -> None:
        self._allowed = allowed
        self._active: dict[Fault, ActiveFault] = {}

    @property
    def allowed(self) -> frozenset[Fault]:
        return self._allowed

    def inject(
        self, fault: Fault | str, *, now: float, duration_s: float | None = None, code: int | None = None
    ) -> ActiveFault:
        """Activate (or re-arm) a fault. Raises FaultError for a fault this device cannot have."""
        fault = parse_fault(fault)
        if fault not in self._allowed:
            raise FaultError(f"fault {fault.value!r} does not apply to this kind of device")
        if duration_s is not None and duration_s <= 0:
            raise FaultError(f"duration_s must be positive, got {duration_s}")
        if fault is Fault.EXCEPTION:
            code = check_exception_code(DEFAULT_EXCEPTION_CODE if code is None else code)
        elif code is not None:
            raise FaultError(f"only the 'exception' fault takes a code, not {fault.value!r}")
        active = ActiveFault(fault, now, None if duration_s is None else now + duration_s, code)
        self._active[fault] = active
        return active

    def clear(self, fault: Fault | str) -> bool:
        """Deactivate a fault; False when it was not active."""
        fault = parse_fault(fault)
        return self._active.pop(fault, None) is not None

    def expire(self, now: float) -> list[Fault]:
        """Clear the faults whose duration has run out; return them."""
        done = [f for f, a in self._active.items() if a.until is not None and a.until <= now]
        for fault in done:
            del self._active[fault]
        return done

    def __contains__(self, fault: object) -> bool:
        return fault in self._active

    def get(self, fault: Fault) -> ActiveFault | None:
        return self._active.get(fault)

    def active(self) -> list[ActiveFault]:
        return sorted(self._active.values(), key=lambda a: (a.since, a.fault.value))

    @property
    def framing_fault(self) -> Fault | None:
        """The framing fault a server applies to this device's answers, if any."""
        return next((f for f in FRAMING_FAULTS if f in self._active), None)
