"""UPS behaviour (simulators layer): mains, battery charge, runtime and status flags, in simulated time.

On mains the battery charges toward 100 % and the runtime estimate is what a full battery
would give at the current load. The `on_battery` fault is a mains failure: the UPS flags
on battery, the charge drains at the rate the load draws it (a full battery lasts
`runtime_full_min` at `load_pct`), the runtime left falls with it, and low battery comes up
when the runtime left drops to `low_battery_runtime_min` or the charge to
`low_battery_charge_pct` (APC's "low battery duration", NUT LB). At 0 % the UPS would cut its
output; here the charge simply stays at 0. `replace_battery` flags RB and halves what a full
battery holds (a worn battery); `overload` puts the load above 100 %.

Written through point roles, so any UPS profile works (roles it lacks are skipped):
ups_on_line, ups_on_battery, ups_low_battery, ups_replace_battery, ups_overload,
battery_charge (%), battery_runtime (min), ups_load (%).
"""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from simulators.device import SimulatedDevice
from simulators.faults import Fault

Percent = Annotated[float, Field(ge=0, le=100)]
Positive = Annotated[float, Field(gt=0)]

WORN_CAPACITY = 0.5  # share of its rated runtime a battery that needs replacing still holds
OVERLOAD_PCT = 115.0


class UpsParams(BaseModel):
    """UPS and battery parameters. Times are simulated; charge and load in percent."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    load_pct: Percent = 40.0
    runtime_full_min: Positive = 30.0  # a full, healthy battery at load_pct
    initial_charge_pct: Percent = 100.0
    recharge_pct_per_min: Positive = 0.5  # on mains, up to 100 %
    low_battery_runtime_min: Annotated[float, Field(ge=0)] = 2.0
    low_battery_charge_pct: Percent = 10.0


class UpsModel:
    """A UPS behind a network card, writing into one SimulatedDevice."""

    def __init__(self, device: SimulatedDevice, params: UpsParams | None = None) -> None:
        self.device = device
        self.params = params or UpsParams()
        self.charge_pct = self.params.initial_charge_pct
        self._write()

    @property
    def on_battery(self) -> bool:
        return Fault.ON_BATTERY in self.device.faults

    @property
    def capacity_min(self) -> float:
        """Runtime of a full battery at the configured load (halved for a worn battery)."""
        worn = Fault.REPLACE_BATTERY in self.device.faults
        return self.params.runtime_full_min * (WORN_CAPACITY if worn else 1.0)

    @property
    def load_pct(self) -> float:
        return OVERLOAD_PCT if Fault.UPS_OVERLOAD in self.device.faults else self.params.load_pct

    @property
    def runtime_min(self) -> float:
        """Runtime left: the charge at what the load draws (more load, less runtime)."""
        scale = self.params.load_pct / self.load_pct if self.load_pct > 0 else 1.0
        return self.charge_pct / 100 * self.capacity_min * scale

    @property
    def low_battery(self) -> bool:
        p = self.params
        return self.on_battery and (
            self.runtime_min <= p.low_battery_runtime_min or self.charge_pct <= p.low_battery_charge_pct
        )

    def step(self, dt_s: float) -> None:
        """Advance `dt_s` simulated seconds (0 = only re-publish after a fault change)."""
        if dt_s < 0:
            raise ValueError(f"dt_s must not be negative, got {dt_s}")
        minutes = dt_s / 60
        if self.on_battery:
            drain = 100 / self.capacity_min * (self.load_pct / self.params.load_pct)  # % per minute
            self.charge_pct = max(0.0, self.charge_pct - drain * minutes)
        else:
            self.charge_pct = min(100.0, self.charge_pct + self.params.recharge_pct_per_min * minutes)
        self._write()

    def snapshot(self) -> dict[str, float | bool]:
        return {
            "on_battery": self.on_battery,
            "charge_pct": round(self.charge_pct, 2),
            "runtime_min": round(self.runtime_min, 2),
            "load_pct": self.load_pct,
            "low_battery": self.low_battery,
        }

    def _write(self) -> None:
        device = self.device
        device.set_role("ups_on_line", not self.on_battery)
        device.set_role("ups_on_battery", self.on_battery)
        device.set_role("ups_low_battery", self.low_battery)
        device.set_role("ups_replace_battery", Fault.REPLACE_BATTERY in device.faults)
        device.set_role("ups_overload", Fault.UPS_OVERLOAD in device.faults)
        device.set_role("battery_charge", round(self.charge_pct))
        device.set_role("battery_runtime", round(self.runtime_min))
        device.set_role("ups_load", round(self.load_pct))
