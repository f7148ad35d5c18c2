"""Self-checkout lane behaviour (simulators layer): lane state, printer and bill validator.

The printer status registers carry the ESC/POS real-time status bytes (`DLE EOT n`, bits 1
and 4 always set, so 0x12 = all well) exactly as a lane concentrator would copy them from
the printer; the bill validator register carries the last ccTalk bill event code. Customers
arrive on a fixed cycle (deterministic, so tests can count transactions). Written through
point roles: lane_state, printer_offline, printer_cover_open, printer_cutter_error,
paper_near_end, paper_end, bill_event, scanner_ok, and transaction_count
where a profile has it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

from protocols.escpos import ErrorStatus, OfflineCauseStatus, PaperStatus, PrinterStatus, StatusKind
from simulators.device import SimulatedDevice
from simulators.faults import Fault

# The role whose register holds the DLE EOT n byte, per n.
_STATUS_BYTE_ROLES = {
    1: ("printer_offline",),
    2: ("printer_cover_open",),
    3: ("printer_cutter_error",),
    4: ("paper_near_end", "paper_end"),
}


@dataclass(frozen=True, slots=True)
class PrinterCondition:
    cover_open: bool = False
    paper_near_end: bool = False
    paper_end: bool = False
    cutter_error: bool = False

    @property
    def offline(self) -> bool:
        return self.cover_open or self.paper_end or self.cutter_error


def escpos_status_bytes(condition: PrinterCondition) -> dict[int, int]:
    """The four `DLE EOT n` answers (n = 1..4) of an Epson-compatible printer in this condition."""
    c = condition
    return {
        StatusKind.PRINTER: PrinterStatus(offline=c.offline).to_byte(),
        StatusKind.OFFLINE_CAUSE: OfflineCauseStatus(
            cover_open=c.cover_open, paper_end_stop=c.paper_end, error=c.cutter_error
        ).to_byte(),
        StatusKind.ERROR: ErrorStatus(autocutter=c.cutter_error).to_byte(),
        StatusKind.PAPER: PaperStatus(near_end=c.paper_near_end, end=c.paper_end).to_byte(),
    }


class LaneParams(BaseModel):
    """Customer cycle of a healthy lane, in simulated seconds."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    transaction_interval_s: Annotated[float, Field(gt=0)] = 180.0
    transaction_duration_s: Annotated[float, Field(gt=0)] = 90.0

    @model_validator(mode="after")
    def _fits(self) -> Self:
        if self.transaction_duration_s >= self.transaction_interval_s:
            raise ValueError("transaction_duration_s must be shorter than transaction_interval_s")
        return self


class LaneModel:
    """A self-checkout lane writing into one SimulatedDevice."""

    def __init__(self, device: SimulatedDevice, params: LaneParams | None = None) -> None:
        self.device = device
        self.params = params or LaneParams()
        self.operating_s = 0.0  # simulated time the lane served customers
        self._write()

    @property
    def transactions(self) -> int:
        p = self.params
        if self.operating_s < p.transaction_duration_s:
            return 0
        return int((self.operating_s - p.transaction_duration_s) // p.transaction_interval_s) + 1

    def step(self, dt_s: float) -> None:
        """Advance `dt_s` simulated seconds (0 = only re-publish after a fault change)."""
        if dt_s < 0:
            raise ValueError(f"dt_s must not be negative, got {dt_s}")
        if self._lane_state() in ("idle", "in_use"):
            self.operating_s += dt_s
        self._write()

    def snapshot(self) -> dict[str, float | int | str]:
        return {"lane_state": self._lane_state(), "transactions": self.transactions}

    def _printer(self) -> PrinterCondition:
        faults = self.device.faults
        return PrinterCondition(
            cover_open=Fault.PRINTER_COVER_OPEN in faults,
            paper_near_end=Fault.PAPER_NEAR_END in faults,
            paper_end=Fault.PAPER_END in faults,
            cutter_error=Fault.CUTTER_ERROR in faults,
        )

    def _lane_state(self) -> str:
        faults = self.device.faults
        if Fault.LANE_DOWN in faults:
            return "out_of_service"
        if self._printer().offline or Fault.BILL_JAM in faults:
            return "attendant_needed"
        p = self.params
        in_use = self.operating_s % p.transaction_interval_s < p.transaction_duration_s
        return "in_use" if in_use else "idle"

    def _bill_event(self) -> str:
        faults = self.device.faults
        if Fault.BILL_JAM in faults:
            return "unsafe_jam"  # ccTalk 6
        if Fault.STACKER_FULL in faults:
            return "stacker_full"  # ccTalk 14
        return "none"

    def _write(self) -> None:
        device = self.device
        printer = self._printer()
        for n, byte in escpos_status_bytes(printer).items():
            point = next((p for role in _STATUS_BYTE_ROLES[n] for p in device.points_with_role(role)), None)
            if point is not None and point.bit is not None:
                device.write_word(point.table, point.address, byte)
        # Bits on their own (coils, discrete inputs, or profiles without the full byte).
        device.set_role("printer_offline", printer.offline)
        device.set_role("printer_cover_open", printer.cover_open)
        device.set_role("printer_cutter_error", printer.cutter_error)
        device.set_role("paper_near_end", printer.paper_near_end)
        device.set_role("paper_end", printer.paper_end)
        device.set_role("scanner_ok", Fault.SCANNER_FAULT not in device.faults)
        for role, name in (("lane_state", self._lane_state()), ("bill_event", self._bill_event())):
            for point in device.points_with_role(role):
                if name in point.enum.values():
                    device.set(point.name, name)
        for point in device.points_with_role("transaction_count"):
            device.set(point.name, self.transactions)
