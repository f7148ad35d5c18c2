"""The simulated devices of a store and their models (simulators layer), without any I/O.

Owns the devices, steps their models in simulated time, and injects and expires faults on
an injected clock, so the same object drives the servers, the control API and unit tests.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from device_profiles.loader import ProfileRegistry
from simulators.config import SimulatorConfig
from simulators.device import PointValue, SimulatedDevice
from simulators.errors import UnknownDeviceError
from simulators.faults import ActiveFault, Fault
from simulators.lane import LaneModel
from simulators.thermal import RefrigerationModel
from simulators.ups import UpsModel

Clock = Callable[[], float]  # monotonic seconds


class DeviceModel(Protocol):
    def step(self, dt_s: float) -> None: ...

    def snapshot(self) -> dict[str, Any]: ...


@dataclass(frozen=True, slots=True)
class FaultState:
    fault: str
    remaining_s: float | None
    code: int | None = None


@dataclass(frozen=True, slots=True)
class DeviceState:
    """What the control API shows of one device."""

    id: str
    bus: str
    unit: int
    profile: str
    kind: str
    points: dict[str, PointValue]
    faults: list[FaultState]
    model: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class _Entry:
    device: SimulatedDevice
    bus: str
    model: DeviceModel | None


class Simulation:
    """Devices by id, their models, and the clocks: real (faults) and simulated (models)."""

    def __init__(self, *, time_scale: float = 1.0, clock: Clock = time.monotonic) -> None:
        if time_scale <= 0:
            raise ValueError(f"time_scale must be positive, got {time_scale}")
        self.time_scale = time_scale
        self._clock = clock
        self._entries: dict[str, _Entry] = {}
        self._last_tick = clock()
        self.simulated_s = 0.0

    @classmethod
    def from_config(
        cls, config: SimulatorConfig, registry: ProfileRegistry, *, clock: Clock = time.monotonic
    ) -> Simulation:
        simulation = cls(time_scale=config.time_scale, clock=clock)
        for bus, spec in config.device_specs():
            device = SimulatedDevice(spec.id, spec.unit, registry.modbus(spec.profile))
            for name, value in spec.initial.items():
                device.set(name, value)
            model: DeviceModel | None = None
            if device.profile.kind == "refrigeration_controller":
                model = RefrigerationModel(device, spec.thermal, setpoint_c=spec.setpoint)
            elif device.profile.kind == "self_checkout_lane":
                model = LaneModel(device, spec.lane)
            elif device.profile.kind == "ups":
                model = UpsModel(device, spec.ups)
            simulation.add(device, bus=bus.name, model=model)
        return simulation

    def add(self, device: SimulatedDevice, *, bus: str, model: DeviceModel | None = None) -> None:
        if device.device_id in self._entries:
            raise ValueError(f"device {device.device_id!r} added twice")
        self._entries[device.device_id] = _Entry(device, bus, model)

    def device(self, device_id: str) -> SimulatedDevice:
        return self._entry(device_id).device

    def model(self, device_id: str) -> DeviceModel | None:
        return self._entry(device_id).model

    def devices(self, bus: str | None = None) -> list[SimulatedDevice]:
        return [e.device for e in self._entries.values() if bus is None or e.bus == bus]

    def inject(
        self, device_id: str, fault: Fault | str, duration_s: float | None = None, *, code: int | None = None
    ) -> ActiveFault:
        """Activate a fault now (for `duration_s` real seconds, or until cleared)."""
        entry = self._entry(device_id)
        active = entry.device.faults.inject(fault, now=self._clock(), duration_s=duration_s, code=code)
        self._publish(entry)
        return active

    def clear(self, device_id: str, fault: Fault | str) -> bool:
        """Clear a fault; False when it was not active. The model resumes normal behaviour."""
        entry = self._entry(device_id)
        cleared = entry.device.faults.clear(fault)
        self._publish(entry)
        return cleared

    def tick(self) -> float:
        """Expire faults and advance the models by the real time since the last tick, times time_scale."""
        now = self._clock()
        dt_s = max(0.0, now - self._last_tick) * self.time_scale
        self._last_tick = now
        for entry in self._entries.values():
            entry.device.faults.expire(now)
        self.advance(dt_s)
        return dt_s

    def advance(self, dt_s: float) -> None:
        """Step every model `dt_s` simulated seconds (tests call this directly)."""
        self.simulated_s += dt_s
        for entry in self._entries.values():
            if entry.model is not None:
                entry.model.step(dt_s)

    def state(self, device_id: str) -> DeviceState:
        entry = self._entry(device_id)
        device = entry.device
        now = self._clock()
        return DeviceState(
            id=device.device_id,
            bus=entry.bus,
            unit=device.unit,
            profile=device.profile.model,
            kind=device.profile.kind,
            points=device.values(),
            faults=[FaultState(a.fault.value, a.remaining_s(now), a.code) for a in device.faults.active()],
            model=entry.model.snapshot() if entry.model is not None else {},
        )

    def states(self) -> list[DeviceState]:
        return [self.state(device_id) for device_id in self._entries]

    def _entry(self, device_id: str) -> _Entry:
        try:
            return self._entries[device_id]
        except KeyError:
            raise UnknownDeviceError(device_id) from None

    @staticmethod
    def _publish(entry: _Entry) -> None:
        """Rewrite the registers at once, so a fault change shows before the next tick."""
        if entry.model is not None:
            entry.model.step(0.0)
