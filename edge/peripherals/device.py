"""One polled serial peripheral (edge layer): conditions -> readings and fault changes.

Each enabled condition of the profile (with the device's ``rules:`` overrides of
``delay_s``, ``clear_delay_s`` and ``enabled``) drives one ``FaultMachine``: a condition
that holds for ``delay_s`` raises its fault, one that is gone for ``clear_delay_s`` clears
it. Health is the Modbus devices' (``edge.device``): K consecutive failed polls raise
``device_offline``, M good polls clear it; while offline every reading is STALE and the
conditions hold their state. Restored faults resume as ACTIVE; for an event-type (latched)
condition the poller's latch is set again, so only the device reporting it over clears it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from device_profiles.peripheral import Condition, ConditionType, PeripheralProfile
from edge.config import DeviceConfig
from edge.errors import EdgeConfigError
from edge.faults import FaultMachine, Transition
from edge.metrics import DeviceMetrics, RequestCounters
from edge.model import DeviceSnapshot, FaultChange, PointReading, PointValue
from edge.offline import OFFLINE_FAULT, OfflineTracker, PolledDevice
from edge.peripherals.transport import ByteTransport
from protocols.mqtt.messages import FaultState, Quality


Evidence = dict[str, float | int | bool | str | None]


@dataclass(frozen=True, slots=True)
class PollResult:
    """What one good poll saw: every condition's state, extra values, and evidence for faults."""

    conditions: Mapping[str, bool]
    values: Mapping[str, PointValue] = field(default_factory=dict)
    evidence: Evidence = field(default_factory=dict)


class Poller(Protocol):
    requests_per_poll: int

    async def poll(
        self, transport: ByteTransport, timeout: float, counters: tuple[RequestCounters, ...]
    ) -> PollResult:
        """Raises TransportError when the poll failed."""
        ...

    def latch(self, condition: str) -> None:
        """Resume an event-type condition as present (a fault restored after a restart)."""
        ...


_OVERRIDABLE = frozenset({"delay_s", "clear_delay_s", "enabled"})


def effective_conditions(profile: PeripheralProfile, device: DeviceConfig) -> list[Condition]:
    """The profile's conditions with the device's overrides (by fault code) applied."""
    by_code = {c.code: c for c in profile.conditions}
    unknown = sorted(set(device.rules) - set(by_code))
    if unknown:
        raise EdgeConfigError(
            f"device {device.id!r}: override for unknown condition {unknown[0]!r} "
            f"(profile {profile.model} has: {', '.join(sorted(by_code))})"
        )
    conditions = []
    for condition in profile.conditions:
        override = device.rules.get(condition.code)
        if override is not None:
            changes = override.model_dump(exclude_none=True)
            other = sorted(set(changes) - _OVERRIDABLE)
            if other:
                raise EdgeConfigError(
                    f"device {device.id!r}: {condition.code!r} is a condition; it has no limit "
                    f"(overridable: delay_s, clear_delay_s, enabled; got {', '.join(other)})"
                )
            condition = Condition.model_validate({**condition.model_dump(), **changes})
        conditions.append(condition)
    return conditions


@dataclass(slots=True)
class _State:
    condition: Condition
    machine: FaultMachine
    kind: ConditionType
    raised: FaultChange | None = None


class PeripheralDevice(PolledDevice):
    def __init__(
        self, bus: str, config: DeviceConfig, profile: PeripheralProfile, poller: Poller, *, timeout_s: float
    ) -> None:
        self.bus = bus
        self.config = config
        self.profile = profile
        self.poller = poller
        self.timeout_s = timeout_s
        self.health = OfflineTracker(config.id, profile.model, config.location, bus, config.unit, "unit",
                                     f"{profile.protocol} {config.unit}", profile.offline, protocol=profile.protocol)
        self.last_ok_at: datetime | None = None
        self._readings: dict[str, PointReading] = {}
        self._states = [
            _State(c, FaultMachine(c.delay_s, c.clear_delay_s), profile.condition_type(c.name))
            for c in effective_conditions(profile, config)
            if c.enabled
        ]
        self.metrics = DeviceMetrics(
            device_id=config.id,
            bus=bus,
            unit=config.unit,
            device_model=profile.model,
            reads_per_poll=poller.requests_per_poll,
        )

    def phases(self) -> dict[str, str]:
        return {s.condition.code: s.machine.phase.value for s in self._states}

    # --- state for the gateway ---------------------------------------------------------------

    def readings(self) -> dict[str, PointReading]:
        """The latest readings; STALE while offline or before the first good poll."""
        if self.offline or self.last_ok_at is None:
            detail = "offline" if self.offline else "not read yet"
            return {p.name: PointReading(p.name, None, Quality.STALE, detail=detail) for p in self.profile.points}
        return dict(self._readings)

    def snapshot(self) -> DeviceSnapshot:
        readings = self.readings()
        return DeviceSnapshot(
            device_id=self.id,
            device_model=self.profile.model,
            location=self.config.location,
            online=not self.offline and self.last_ok_at is not None,
            readings=tuple(readings[p.name] for p in self.profile.points if p.name in readings),
            read_at=self.last_ok_at,
            last_ok_at=self.last_ok_at,
        )

    def active_faults(self) -> list[FaultChange]:
        faults = [s.raised for s in self._states if s.raised is not None]
        if self.offline_fault is not None:
            faults.append(self.offline_fault)
        return faults

    def restore(self, raised: FaultChange, since: float) -> bool:
        """Resume a fault open from before a restart, emitting nothing; False if no condition has its code."""
        if raised.fault_code == OFFLINE_FAULT:
            self.health.restore(raised, since)
            self.metrics.online = False
            return True
        state = next((s for s in self._states if s.condition.code == raised.fault_code), None)
        if state is None:
            return False
        state.machine.restore(since)
        state.raised = raised
        if state.kind is ConditionType.EVENT:
            self.poller.latch(state.condition.name)
        return True

    # --- polling ---------------------------------------------------------------------------------

    async def poll(self, transport: ByteTransport, counters: tuple[RequestCounters, ...]) -> PollResult:
        return await self.poller.poll(transport, self.timeout_s, (self.metrics.requests, *counters))

    def poll_succeeded(self, result: PollResult, now: float, at: datetime) -> list[FaultChange]:
        m = self.metrics
        trusted, back = self.health.poll_succeeded(m, now, at)
        if not trusted:
            return []  # not trusted yet: readings stay unknown, conditions hold
        changes = [back] if back is not None else []
        self._readings = {
            **{name: PointReading(name, value, Quality.GOOD) for name, value in result.conditions.items()},
            **{name: PointReading(name, value, Quality.GOOD) for name, value in result.values.items()},
        }
        self.last_ok_at = at
        m.online = True
        for state in self._states:
            change = self._evaluate(state, result, now, at)
            if change is not None:
                changes.append(change)
        return changes

    def poll_failed(self, error: Exception, now: float, at: datetime) -> list[FaultChange]:
        m = self.metrics
        raised = self.health.poll_failed(m, error, now, at, self.last_ok_at)
        return [raised] if raised is not None else []

    def _evaluate(self, state: _State, result: PollResult, now: float, at: datetime) -> FaultChange | None:
        present = result.conditions.get(state.condition.name)
        if present is None:
            return None  # not observed this poll: hold
        transition = state.machine.observe(now, beyond=present, recovered=not present)
        if transition is None:
            return None
        c, machine = state.condition, state.machine
        evidence: Evidence = {"condition": c.name, "condition_type": state.kind.value, **result.evidence}
        if transition is Transition.RAISED:
            assert machine.pending_since is not None
            evidence["beyond_s"] = round(now - machine.pending_since, 3)
            evidence["delay_s"] = c.delay_s
            state.raised = self._change(c, FaultState.RAISED, at, evidence)
            return state.raised
        if machine.active_since is not None:
            evidence["active_s"] = round(now - machine.active_since, 3)
        evidence["clear_delay_s"] = c.clear_delay_s
        state.raised = None
        return self._change(c, FaultState.CLEARED, at, evidence)

    def _change(self, c: Condition, kind: FaultState, at: datetime, evidence: Evidence) -> FaultChange:
        return FaultChange(
            device_id=self.id,
            device_model=self.profile.model,
            fault_code=c.code,
            state=kind,
            severity=c.severity,
            fault_class=c.fault_class,
            ticket_class=c.ticket_class,
            occurred_at=at,
            description=c.description or f"{self.profile.kind} condition {c.name}",
            location=self.config.location,
            evidence=evidence,
        )
