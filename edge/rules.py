"""The rule engine (edge layer): a device's readings -> fault changes, on the injected clock. Pure.

Each enabled rule of the device's profile (with the device's overrides applied) drives one
``FaultMachine``. A reading turns into an observation per rule type:

* high_limit / low_limit: beyond = past ``limit``; recovered = back past ``clear`` (hysteresis)
* flag: the bit equals ``active_when``;  state: the enum is in ``states``
* probe_fault: the reading's quality is BAD (sentinel, implausible, not a number)

Unknown data (STALE, or BAD for a non-probe rule) is no observation: the fault holds its
state, so an offline case is never "still high" and never silently cleared. While a
suppression point is true, and for ``after_s`` after it turned false, a rule cannot start
or continue a pending fault; an active fault can still clear. A fault still open from
before a restart is restored as active; the readings then decide when it clears.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from pydantic import ValidationError

from device_profiles.schema import DeviceProfile, Rule, RuleType
from edge.config import DeviceConfig
from edge.errors import EdgeConfigError
from edge.faults import FaultMachine, Transition
from edge.model import FaultChange, PointReading
from protocols.mqtt.messages import FaultState, Quality

Evidence = dict[str, float | int | bool | str | None]


def effective_rules(profile: DeviceProfile, device: DeviceConfig) -> list[Rule]:
    """The profile's rules with the device's overrides applied and validated again."""
    by_code = {rule.code: rule for rule in profile.rules}
    unknown = sorted(set(device.rules) - set(by_code))
    if unknown:
        known = ", ".join(sorted(by_code)) or "none"
        raise EdgeConfigError(
            f"device {device.id!r}: override for unknown rule {unknown[0]!r} (profile {profile.model} has: {known})"
        )
    rules = []
    for rule in profile.rules:
        override = device.rules.get(rule.code)
        if override is not None:
            merged = {**rule.model_dump(), **override.model_dump(exclude_none=True)}
            try:
                rule = Rule.model_validate(merged)
            except ValidationError as exc:
                message = exc.errors()[0]["msg"].removeprefix("Value error, ")
                raise EdgeConfigError(f"device {device.id!r}: rule {rule.code!r}: {message}") from exc
        rules.append(rule)
    return rules


@dataclass(slots=True)
class _Switch:
    """What the rules know of one suppression point: on now, or when it last went off."""

    on: bool = False
    off_since: float | None = None

    def update(self, reading: PointReading | None, now: float) -> None:
        if reading is None or reading.quality is not Quality.GOOD:
            return  # unknown: keep what we knew
        if reading.value is True:
            self.on, self.off_since = True, None
        elif self.on:
            self.on, self.off_since = False, now

    def suppresses(self, after_s: float, now: float) -> bool:
        return self.on or (self.off_since is not None and now - self.off_since < after_s)


@dataclass(slots=True)
class _RuleState:
    rule: Rule
    machine: FaultMachine
    raised: FaultChange | None = None
    last_beyond: Evidence | None = None  # evidence of the last observation beyond the limit


class DeviceRules:
    """All rules of one device, evaluated after each of its polls."""

    def __init__(self, device: DeviceConfig, profile: DeviceProfile, rules: Sequence[Rule] | None = None) -> None:
        self._device = device
        self._profile = profile
        rules = effective_rules(profile, device) if rules is None else rules
        self._states = [
            _RuleState(rule, FaultMachine(rule.delay_s, rule.clear_delay_s)) for rule in rules if rule.enabled
        ]
        self._switches = {s.point: _Switch() for st in self._states for s in st.rule.suppress}

    @property
    def rules(self) -> list[Rule]:
        return [state.rule for state in self._states]

    def evaluate(self, readings: Mapping[str, PointReading], now: float, at: datetime) -> list[FaultChange]:
        """Feed one poll's readings (monotonic ``now``, wall-clock ``at``); return the changes."""
        for name, switch in self._switches.items():
            switch.update(readings.get(name), now)
        changes = []
        for state in self._states:
            change = self._evaluate_rule(state, readings.get(state.rule.point), now, at)
            if change is not None:
                changes.append(change)
        return changes

    def active_faults(self) -> list[FaultChange]:
        """The raise of every fault that is active (or clearing) now."""
        return [state.raised for state in self._states if state.raised is not None]

    def restore(self, raised: FaultChange, active_since: float) -> bool:
        """Resume the fault ``raised`` before a restart as active, emitting nothing; False when
        no enabled rule has its code (the rule was disabled, renamed or removed meanwhile)."""
        state = next((s for s in self._states if s.rule.code == raised.fault_code), None)
        if state is None:
            return False
        state.machine.restore(active_since)
        state.raised = raised
        return True

    def phases(self) -> dict[str, str]:
        return {state.rule.code: state.machine.phase.value for state in self._states}

    def _evaluate_rule(
        self, state: _RuleState, reading: PointReading | None, now: float, at: datetime
    ) -> FaultChange | None:
        rule = state.rule
        observed = observe(rule, reading)
        if observed is None:
            return None
        beyond, recovered = observed
        if beyond and self._suppressed(rule, now):
            beyond = False
        assert reading is not None
        if beyond:
            state.last_beyond = _reading_evidence(reading)
        transition = state.machine.observe(now, beyond=beyond, recovered=recovered)
        if transition is Transition.RAISED:
            state.raised = self._change(state, reading, FaultState.RAISED, at, self._raise_evidence(state, now))
            return state.raised
        if transition is Transition.CLEARED:
            state.raised = None
            return self._change(state, reading, FaultState.CLEARED, at, self._clear_evidence(state, reading, now))
        return None

    def _suppressed(self, rule: Rule, now: float) -> bool:
        return any(self._switches[s.point].suppresses(s.after_s, now) for s in rule.suppress)

    def _raise_evidence(self, state: _RuleState, now: float) -> Evidence:
        rule, machine = state.rule, state.machine
        assert machine.pending_since is not None
        evidence: Evidence = {**_rule_evidence(rule), **(state.last_beyond or {})}
        evidence["beyond_s"] = round(now - machine.pending_since, 3)
        evidence["delay_s"] = rule.delay_s
        return evidence

    def _clear_evidence(self, state: _RuleState, reading: PointReading, now: float) -> Evidence:
        rule, machine = state.rule, state.machine
        evidence: Evidence = {**_rule_evidence(rule), **_reading_evidence(reading)}
        if machine.active_since is not None:
            evidence["active_s"] = round(now - machine.active_since, 3)
        if machine.clearing_since is not None:
            evidence["recovered_s"] = round(now - machine.clearing_since, 3)
        evidence["clear_delay_s"] = rule.clear_delay_s
        return evidence

    def _change(
        self, state: _RuleState, reading: PointReading, kind: FaultState, at: datetime, evidence: Evidence
    ) -> FaultChange:
        rule = state.rule
        return FaultChange(
            device_id=self._device.id,
            device_model=self._profile.model,
            fault_code=rule.code,
            state=kind,
            severity=rule.severity,
            fault_class=rule.fault_class,
            ticket_class=rule.ticket_class,
            occurred_at=at,
            description=rule.description or f"{rule.type.value} on {rule.point}",
            location=self._device.location,
            evidence=evidence,
        )


def observe(rule: Rule, reading: PointReading | None) -> tuple[bool, bool] | None:
    """(beyond, recovered) for one reading, or None when the reading says nothing (unknown)."""
    if reading is None or reading.quality is Quality.STALE:
        return None
    if rule.type is RuleType.PROBE_FAULT:
        bad = reading.quality is Quality.BAD
        return bad, not bad
    if reading.quality is not Quality.GOOD:
        return None  # a faulty probe's value neither raises nor clears a limit (probe_fault does)
    value = reading.value
    if rule.type is RuleType.FLAG:
        return value is rule.active_when, value is not rule.active_when
    if rule.type is RuleType.STATE:
        return value in rule.states, value not in rule.states
    if not isinstance(value, int | float) or isinstance(value, bool):
        return None
    assert rule.limit is not None and rule.clear_level is not None
    if rule.type is RuleType.HIGH_LIMIT:
        return value > rule.limit, value <= rule.clear_level
    return value < rule.limit, value >= rule.clear_level


def _rule_evidence(rule: Rule) -> Evidence:
    evidence: Evidence = {"point": rule.point, "rule_type": rule.type.value}
    if rule.limit is not None:
        evidence["limit"] = rule.limit
        evidence["clear"] = rule.clear_level
    if rule.type is RuleType.STATE:
        evidence["states"] = ",".join(rule.states)
    if rule.type is RuleType.FLAG:
        evidence["active_when"] = rule.active_when
    return evidence


def _reading_evidence(reading: PointReading) -> Evidence:
    evidence: Evidence = {"value": reading.value, "unit": reading.unit, "quality": reading.quality.value}
    if reading.raw is not None:
        evidence["raw"] = reading.raw
    if reading.detail:
        evidence["detail"] = reading.detail
    return evidence
