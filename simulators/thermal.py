"""Thermal model of a refrigerated display case (simulators layer), driven by simulated time.

Physics: the case air exchanges heat with the shop (slowly, faster through an open door)
and with the evaporator coil (strongly while the fans run). A running compressor pulls the
coil toward its evaporating temperature; a stopped or dead one lets it drift to the air; a
defrost heater warms it. Sub-steps of at most MAX_SUBSTEP_S keep large `dt` stable.

Controller: a thermostat cuts out at the setpoint and in at setpoint + differential; a
defrost runs every interval (heat until the coil reaches the end temperature or the maximum
time, then drip, then a fan delay with the compressor on); on a probe fault the compressor
runs a fixed duty cycle (Dixell Con/CoF, Danfoss emergency cooling). Alarm bits switch
after the controller's own delays. Everything is written through point roles, so any
refrigeration profile works; roles a profile lacks are skipped.

Roles written: air_temperature, evaporator_temperature, compressor_on, defrost_active,
door_open, door_alarm, high_temp_alarm, compressor_alarm, probe_status, controller_state
(u00-style names: normal, thermostat_cut_out, defrost, drip_off, fan_delay, door_open,
emergency_cooling), and when a profile has them: air_on_temperature, controller_on,
probe_alarm, defrost_timeout_alarm, summary_alarm. Role read: setpoint (so a Modbus write
of the setpoint changes the behaviour).
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

from simulators.device import PointValue, SimulatedDevice
from simulators.faults import Fault

MAX_SUBSTEP_S = 5.0
DEFAULT_SETPOINT_C = 3.0
PROBE_FAULT_SENTINEL = "probe_fault"

Positive = Annotated[float, Field(gt=0)]


class ThermalParams(BaseModel):
    """Case and controller parameters. Times are simulated seconds, temperatures °C."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    ambient_c: float = 22.0
    differential_k: Positive = 2.0  # Danfoss r01 / Dixell HY
    evaporating_c: float = -10.0  # coil temperature a running compressor pulls toward
    leak_tau_s: Positive = 1800.0  # air <-> shop through the closed case
    coil_tau_s: Positive = 600.0  # air <-> coil with the fans running
    coil_tau_fans_off_s: Positive = 2400.0
    evaporator_tau_s: Positive = 120.0  # coil response to a running compressor
    evaporator_idle_tau_s: Positive = 120.0  # coil drifting to the air temperature
    door_tau_s: Positive = 300.0  # extra exchange with the shop while the door is open
    air_on_offset_k: float = 1.5  # return air (S3) runs warmer than discharge air (S4)
    defrost_interval_s: Positive = 8 * 3600.0  # Danfoss d03
    first_defrost_s: Annotated[float, Field(ge=0)] | None = None  # None = one interval after start
    defrost_heater_k_per_s: Positive = 0.02
    defrost_loss_tau_s: Positive = 900.0  # heated coil losing heat to the still air (fans off)
    defrost_end_c: float = 8.0  # Dixell dtE / Danfoss d02
    defrost_max_s: Positive = 45 * 60.0  # Danfoss d04
    drip_s: Annotated[float, Field(ge=0)] = 120.0
    fan_delay_s: Annotated[float, Field(ge=0)] = 300.0
    high_alarm_c: float = 8.0  # Danfoss A13
    high_alarm_hysteresis_k: Annotated[float, Field(ge=0)] = 2.0
    high_alarm_delay_s: Annotated[float, Field(ge=0)] = 30 * 60.0  # A03
    high_alarm_inhibit_s: Annotated[float, Field(ge=0)] = 90 * 60.0  # A12 pull-down after defrost
    door_alarm_delay_s: Annotated[float, Field(ge=0)] = 60 * 60.0  # A04
    compressor_alarm_delay_s: Annotated[float, Field(ge=0)] = 10 * 60.0
    probe_fault_on_s: Positive = 15 * 60.0  # Dixell Con
    probe_fault_off_s: Positive = 30 * 60.0  # Dixell CoF

    @model_validator(mode="after")
    def _coil_colder(self) -> Self:
        if self.evaporating_c >= self.ambient_c:
            raise ValueError("evaporating_c must be below ambient_c")
        return self


class DefrostPhase(StrEnum):
    NONE = "none"
    HEAT = "heat"
    DRIP = "drip"
    FAN_DELAY = "fan_delay"


class RefrigerationModel:
    """A refrigerated case behind a controller, writing into one SimulatedDevice."""

    def __init__(
        self, device: SimulatedDevice, params: ThermalParams | None = None, *, setpoint_c: float | None = None
    ) -> None:
        self.device = device
        self.params = params or ThermalParams()
        self._setpoint_c = DEFAULT_SETPOINT_C if setpoint_c is None else setpoint_c
        device.set_role("setpoint", self._setpoint_c)
        p = self.params
        self.air_c = self.setpoint_c + p.differential_k / 2
        self.evaporator_c = self.air_c - 4.0
        self.compressor_on = True  # the cooling relay: what the controller asks for
        self.phase = DefrostPhase.NONE
        self.phase_s = 0.0
        self.until_defrost_s = p.defrost_interval_s if p.first_defrost_s is None else p.first_defrost_s
        self.defrost_timed_out = False
        self.high_alarm = False
        self.door_alarm = False
        self.compressor_alarm = False
        self._inhibit_s = 0.0
        self._high_s = 0.0
        self._door_s = 0.0
        self._dead_s = 0.0
        self._duty_s = 0.0
        self._write()

    @property
    def setpoint_c(self) -> float:
        value = self.device.get_role("setpoint")
        if isinstance(value, int | float) and not isinstance(value, bool):
            self._setpoint_c = float(value)
        return self._setpoint_c

    def step(self, dt_s: float) -> None:
        """Advance `dt_s` simulated seconds (0 = only re-publish after a fault change)."""
        if dt_s < 0:
            raise ValueError(f"dt_s must not be negative, got {dt_s}")
        self._follow_cleared_faults()
        remaining = dt_s
        while remaining > 0:
            h = min(remaining, MAX_SUBSTEP_S)
            self._advance(h)
            remaining -= h
        self._write()

    def snapshot(self) -> dict[str, float | bool | str]:
        """The model's true state (the probe may be lying): for the control API and tests."""
        return {
            "air_c": round(self.air_c, 2),
            "evaporator_c": round(self.evaporator_c, 2),
            "compressor_on": self.compressor_on,
            "defrost_phase": self.phase.value,
            "until_defrost_s": round(self.until_defrost_s, 1),
        }

    def _follow_cleared_faults(self) -> None:
        """Alarms that only a fault keeps up go as soon as it is cleared, even with dt = 0."""
        faults = self.device.faults
        if Fault.COMPRESSOR_DEAD not in faults:
            self.compressor_alarm, self._dead_s = False, 0.0
        if Fault.DOOR_OPEN not in faults:
            self.door_alarm, self._door_s = False, 0.0

    # --- one sub-step -----------------------------------------------------------------------

    def _advance(self, h: float) -> None:
        faults = self.device.faults
        door = Fault.DOOR_OPEN in faults
        dead = Fault.COMPRESSOR_DEAD in faults
        probe = Fault.PROBE_FAULT in faults
        self._defrost_schedule(h)
        self._relay(h, probe)
        self._physics(h, cooling=self.compressor_on and not dead, door=door)
        self._alarms(h, door=door, dead=dead, probe=probe)

    def _defrost_schedule(self, h: float) -> None:
        p = self.params
        self.until_defrost_s -= h
        if self.phase is DefrostPhase.NONE:
            if self.until_defrost_s <= 0:
                self._enter(DefrostPhase.HEAT)
                self.until_defrost_s += p.defrost_interval_s
            return
        self.phase_s += h
        if self.phase is DefrostPhase.HEAT:
            if self.evaporator_c >= p.defrost_end_c or self.phase_s >= p.defrost_max_s:
                self.defrost_timed_out = self.evaporator_c < p.defrost_end_c
                self._enter(DefrostPhase.DRIP)
        elif self.phase is DefrostPhase.DRIP and self.phase_s >= p.drip_s:
            self._enter(DefrostPhase.FAN_DELAY)
        elif self.phase is DefrostPhase.FAN_DELAY and self.phase_s >= p.fan_delay_s:
            self._enter(DefrostPhase.NONE)
            self._inhibit_s = p.high_alarm_inhibit_s

    def _enter(self, phase: DefrostPhase) -> None:
        self.phase = phase
        self.phase_s = 0.0

    def _relay(self, h: float, probe: bool) -> None:
        p = self.params
        if self.phase in (DefrostPhase.HEAT, DefrostPhase.DRIP):
            self.compressor_on = False
        elif self.phase is DefrostPhase.FAN_DELAY:
            self.compressor_on = True
        elif probe:  # the controller cannot see the air: fixed duty cycle
            self.compressor_on = self._duty_s % (p.probe_fault_on_s + p.probe_fault_off_s) < p.probe_fault_on_s
            self._duty_s += h
        else:
            setpoint = self.setpoint_c
            if self.air_c >= setpoint + p.differential_k:
                self.compressor_on = True
            elif self.air_c <= setpoint:
                self.compressor_on = False
        if not probe:
            self._duty_s = 0.0

    def _physics(self, h: float, *, cooling: bool, door: bool) -> None:
        p = self.params
        fans = self.phase is DefrostPhase.NONE
        coil_tau = p.coil_tau_s if fans else p.coil_tau_fans_off_s
        d_air = (p.ambient_c - self.air_c) / p.leak_tau_s + (self.evaporator_c - self.air_c) / coil_tau
        if door:
            d_air += (p.ambient_c - self.air_c) / p.door_tau_s
        if self.phase is DefrostPhase.HEAT:
            d_coil = p.defrost_heater_k_per_s + (self.air_c - self.evaporator_c) / p.defrost_loss_tau_s
        elif cooling:
            d_coil = (p.evaporating_c - self.evaporator_c) / p.evaporator_tau_s
        else:
            d_coil = (self.air_c - self.evaporator_c) / p.evaporator_idle_tau_s
        self.air_c += d_air * h
        self.evaporator_c += d_coil * h

    def _alarms(self, h: float, *, door: bool, dead: bool, probe: bool) -> None:
        p = self.params
        self._door_s = self._door_s + h if door else 0.0
        self.door_alarm = door and self._door_s >= p.door_alarm_delay_s
        # The compressor protection trips after it has been asked to run and could not.
        if dead and self.compressor_on:
            self._dead_s += h
        elif not dead:
            self._dead_s = 0.0
        self.compressor_alarm = dead and (self.compressor_alarm or self._dead_s >= p.compressor_alarm_delay_s)
        self._inhibit_s = max(0.0, self._inhibit_s - h)
        if self.high_alarm:  # latched until the air recovers below limit - hysteresis
            self.high_alarm = self.air_c > p.high_alarm_c - p.high_alarm_hysteresis_k
            self._high_s = 0.0
            return
        suppressed = probe or self.phase is not DefrostPhase.NONE or self._inhibit_s > 0
        above = self.air_c > p.high_alarm_c and not suppressed
        self._high_s = self._high_s + h if above else 0.0
        self.high_alarm = above and self._high_s >= p.high_alarm_delay_s

    # --- outputs ----------------------------------------------------------------------------

    def _write(self) -> None:
        device = self.device
        probe = Fault.PROBE_FAULT in device.faults
        door = Fault.DOOR_OPEN in device.faults
        self._write_air(probe)
        device.set_role("air_on_temperature", round(self.air_c + self.params.air_on_offset_k, 1))
        device.set_role("evaporator_temperature", round(self.evaporator_c, 1))
        device.set_role("compressor_on", self.compressor_on)
        device.set_role("defrost_active", self.phase is DefrostPhase.HEAT)
        device.set_role("controller_on", True)
        device.set_role("door_open", door)
        device.set_role("door_alarm", self.door_alarm)
        device.set_role("high_temp_alarm", self.high_alarm)
        device.set_role("compressor_alarm", self.compressor_alarm)
        device.set_role("probe_alarm", probe)
        device.set_role("defrost_timeout_alarm", self.defrost_timed_out)
        alarms = (self.door_alarm, self.high_alarm, self.compressor_alarm, probe, self.defrost_timed_out)
        device.set_role("summary_alarm", any(alarms))
        self._write_named("probe_status", "open" if probe else "ok", int(probe))
        self._write_named("controller_state", self._controller_state(probe, door), None)

    def _write_air(self, probe: bool) -> None:
        for point in self.device.points_with_role("air_temperature"):
            value: PointValue = round(self.air_c, 1)
            if probe and PROBE_FAULT_SENTINEL in point.sentinels.values():
                value = PROBE_FAULT_SENTINEL
            elif probe and point.plausible is not None:
                value = point.plausible.min - 10  # an open probe reads far below the plausible range
            self.device.set(point.name, value)

    def _write_named(self, role: str, name: str, fallback: int | None) -> None:
        """Write an enum name where the point knows it, else the fallback number (or nothing)."""
        for point in self.device.points_with_role(role):
            if name in point.enum.values():
                self.device.set(point.name, name)
            elif fallback is not None and not point.enum:
                self.device.set(point.name, fallback)

    def _controller_state(self, probe: bool, door: bool) -> str:
        if probe:
            return "emergency_cooling"
        if door:
            return "door_open"
        if self.phase is DefrostPhase.HEAT:
            return "defrost"
        if self.phase is DefrostPhase.DRIP:
            return "drip_off"
        if self.phase is DefrostPhase.FAN_DELAY:
            return "fan_delay"
        return "normal" if self.compressor_on else "thermostat_cut_out"
