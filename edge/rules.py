"""The rule engine (edge layer): a device's readings -> fault changes, on the injected clock. Pure.

Each enabled rule of the device's profile (with the device's overrides applied) drives one
``FaultMachine``, fed by a detector (``edge.detectors``) that turns a reading into an
observation per rule type:

* high_limit / low_limit: beyond = past ``limit``; recovered = back past ``clear`` (hysteresis)
* flag: the bit equals ``active_when``;  state: the enum is in ``states``
* probe_fault: the reading's quality is BAD (sentinel, implausible, not a number)
* not_seen: the bit / enum state has not been seen for ``max_interval_s``
* creep: a short mean above a rolling baseline by more than ``limit``
* rate: a rise of more than ``limit`` within ``window_s``

Unknown data (STALE, or BAD for a non-probe rule) is no observation: the fault holds its
state, so an offline case is never "still high" and never silently cleared. While a
suppression holds (``edge.suppression``: a point, or the device coming online) a rule cannot
start or continue a pending fault; an active fault can still clear. A fault still open from
before a restart is restored as active; pending delays, detector memory and suppression
windows are exported and imported (``export_state`` / ``import_state``, wall-clock stamps).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime

from pydantic import ValidationError

from device_profiles.schema import DeviceProfile, Rule, RuleType
from edge.config import DeviceConfig
from edge.detectors import Detector, Saved, Timebase, detector_for
from edge.detectors import Evidence as Evidence
from edge.detectors import observe as observe
from edge.errors import EdgeConfigError
from edge.faults import FaultMachine, Phase, Transition
from edge.model import FaultChange, PointReading
from edge.suppression import Suppressions
from protocols.mqtt.messages import FaultState

logger = logging.getLogger(__name__)
STATE_VERSION = 1


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
class _RuleState:
    rule: Rule
    machine: FaultMachine
    detector: Detector
    raised: FaultChange | None = None
    last_beyond: Evidence | None = None  # evidence of the last observation beyond the limit

    @classmethod
    def fresh(cls, rule: Rule) -> _RuleState:
        return cls(rule, FaultMachine(rule.delay_s, rule.clear_delay_s), detector_for(rule))

    def carried(self, rule: Rule, now: float) -> _RuleState:
        """This state under the rule's new parameters; new detector memory if what it watches changed."""
        self.machine.delay_s, self.machine.clear_delay_s = rule.delay_s, rule.clear_delay_s
        detector = self.detector
        if (rule.type, rule.point) != (self.rule.type, self.rule.point):
            detector = detector_for(rule)
            detector.start(now)
        return _RuleState(rule, self.machine, detector, self.raised, self.last_beyond)


class DeviceRules:
    """All rules of one device, evaluated after each of its polls."""

    def __init__(self, device: DeviceConfig, profile: DeviceProfile, rules: Sequence[Rule] | None = None) -> None:
        self._device = device
        self._profile = profile
        rules = effective_rules(profile, device) if rules is None else rules
        self._states = [_RuleState.fresh(rule) for rule in rules if rule.enabled]
        self._suppressions = Suppressions(self.rules)

    @property
    def rules(self) -> list[Rule]:
        return [state.rule for state in self._states]

    def evaluate(self, readings: Mapping[str, PointReading], now: float, at: datetime) -> list[FaultChange]:
        """Feed one poll's readings (monotonic ``now``, wall-clock ``at``); return the changes."""
        self._suppressions.update(readings, now)
        changes = []
        for state in self._states:
            change = self._evaluate_rule(state, readings.get(state.rule.point), now, at)
            if change is not None:
                changes.append(change)
        return changes

    def device_online(self, now: float, *, first_poll: bool = False) -> None:
        """The device started answering at ``now``: its first good poll (``first_poll``) or its
        return after an outage. Starts the ``after: device_online`` suppression windows."""
        self._suppressions.device_online(now, first_poll=first_poll)

    def active_faults(self) -> list[FaultChange]:
        """The raise of every fault that is active (or clearing) now."""
        return [state.raised for state in self._states if state.raised is not None]

    def restore(self, raised: FaultChange, active_since: float) -> bool:
        """Resume the fault ``raised`` before a restart as active, emitting nothing; False when
        no enabled rule has its code (the rule was disabled, renamed or removed meanwhile)."""
        state = self._state(raised.fault_code)
        if state is None:
            return False
        state.machine.restore(active_since)
        state.raised = raised
        return True

    def reconfigure(self, rules: Sequence[Rule], now: float, at: datetime) -> list[FaultChange]:
        """Swap in a new list of effective rules at once (validate them first with
        ``effective_rules``). A code kept keeps its state machine (phase, timers) under the new
        limits and delays; a new code starts idle; an active fault whose rule is gone or now
        disabled is returned cleared (evidence ``reason``: ``rule_removed`` / ``rule_disabled``)."""
        self._check(rules)
        old = {state.rule.code: state for state in self._states}
        states = []
        for rule in (r for r in rules if r.enabled):
            kept = old.get(rule.code)
            states.append(kept.carried(rule, now) if kept else _RuleState.fresh(rule))
            if kept is None:
                states[-1].detector.start(now)
        disabled = {rule.code for rule in rules if not rule.enabled}
        codes = {state.rule.code for state in states}
        changes = [
            self._gone(state, "rule_disabled" if state.rule.code in disabled else "rule_removed", now, at)
            for state in self._states
            if state.rule.code not in codes and state.raised is not None
        ]
        self._states = states
        self._suppressions = Suppressions(self.rules, self._suppressions)
        return changes

    def phases(self) -> dict[str, str]:
        return {state.rule.code: state.machine.phase.value for state in self._states}

    # --- state across a restart ----------------------------------------------------------------

    def export_state(self, now: float, at: datetime) -> Saved:
        """Pending delays, detector memory and suppression windows, JSON-able, with wall-clock
        stamps (``now`` monotonic and ``at`` wall clock are the same moment). Active faults are
        not in it: they are restored from the open faults (``restore``)."""
        base = Timebase(now, at)
        rules: Saved = {}
        for state in self._states:
            entry: Saved = {"type": state.rule.type.value, "point": state.rule.point}
            if state.machine.phase is Phase.PENDING and state.machine.pending_since is not None:
                entry["pending_since"] = base.wall(state.machine.pending_since)
            entry["memory"] = state.detector.export(base)
            rules[state.rule.code] = entry
        return {"version": STATE_VERSION, "saved_at": at.isoformat(), "rules": rules, **self._suppressions.export(base)}

    def import_state(self, saved: Mapping[str, object], now: float, at: datetime) -> None:
        """Resume what ``export_state`` saved before a restart. Entries for rules that are gone
        or changed type or point, and invalid entries, are skipped with one warning."""
        if saved.get("version") != STATE_VERSION:
            logger.warning("device %s: saved rule state of version %r ignored", self._device.id, saved.get("version"))
            return
        base = Timebase(now, at)
        ignored = self._suppressions.load(saved, base)
        rules = saved.get("rules", {})
        if not isinstance(rules, Mapping):
            ignored.append("'rules' is not an object")
            rules = {}
        for code, entry in rules.items():
            problem = self._import_rule(str(code), entry, base)
            if problem:
                ignored.append(f"rule {code!r}: {problem}")
        if ignored:
            logger.warning("device %s: ignored saved rule state: %s", self._device.id, "; ".join(ignored))

    def _import_rule(self, code: str, entry: object, base: Timebase) -> str | None:
        state = self._state(code)
        if state is None:
            return "no enabled rule with this code"
        if not isinstance(entry, Mapping):
            return "not an object"
        if (entry.get("type"), entry.get("point")) != (state.rule.type.value, state.rule.point):
            was = f"{entry.get('type')} on {entry.get('point')!r}"
            return f"saved for a {was} rule, now {state.rule.type.value} on {state.rule.point!r}"
        try:
            memory = entry.get("memory", {})
            if not isinstance(memory, Mapping):
                raise ValueError("'memory' is not an object")
            pending = base.mono(entry["pending_since"]) if "pending_since" in entry else None
            detector = detector_for(state.rule)
            detector.load(memory, base)
        except (ValueError, TypeError, KeyError) as exc:
            return f"invalid ({exc})"
        state.detector = detector
        if pending is not None:
            state.machine.resume_pending(pending)
        return None

    # --- one rule -------------------------------------------------------------------------------

    def _state(self, code: str) -> _RuleState | None:
        return next((s for s in self._states if s.rule.code == code), None)

    def _check(self, rules: Sequence[Rule]) -> None:
        codes = [rule.code for rule in rules]
        if len(codes) != len(set(codes)):
            duplicates = sorted({c for c in codes if codes.count(c) > 1})
            raise EdgeConfigError(f"device {self._device.id!r}: duplicate rule codes {duplicates}")
        known = {p.name for p in self._profile.points}
        for rule in rules:
            points = {rule.point} | {s.point for s in rule.suppress if s.point is not None}
            if points - known:
                raise EdgeConfigError(
                    f"device {self._device.id!r}: rule {rule.code!r} names unknown points {sorted(points - known)}"
                )

    def _gone(self, state: _RuleState, reason: str, now: float, at: datetime) -> FaultChange:
        assert state.raised is not None
        evidence: Evidence = {**_rule_evidence(state.rule), "reason": reason}
        if state.machine.active_since is not None:
            evidence["active_s"] = round(now - state.machine.active_since, 3)
        evidence["raised_at"] = state.raised.occurred_at.isoformat()
        return replace(state.raised, state=FaultState.CLEARED, occurred_at=at, evidence=evidence)

    def _evaluate_rule(
        self, state: _RuleState, reading: PointReading | None, now: float, at: datetime
    ) -> FaultChange | None:
        rule = state.rule
        suppressed = self._suppressions.suppresses(rule, now)
        observed = state.detector.observe(rule, reading, now, suppressed=suppressed, active=state.machine.is_active)
        if observed is None:
            return None
        assert reading is not None
        beyond, recovered = observed
        beyond = beyond and not suppressed
        if beyond:
            state.last_beyond = {**_reading_evidence(reading), **state.detector.evidence(rule, now)}
        transition = state.machine.observe(now, beyond=beyond, recovered=recovered)
        if transition is Transition.RAISED:
            state.raised = self._change(state, FaultState.RAISED, at, self._raise_evidence(state, now))
            return state.raised
        if transition is Transition.CLEARED:
            state.raised = None
            return self._change(state, FaultState.CLEARED, at, self._clear_evidence(state, reading, now))
        return None

    def _raise_evidence(self, state: _RuleState, now: float) -> Evidence:
        rule, machine = state.rule, state.machine
        assert machine.pending_since is not None
        evidence: Evidence = {**_rule_evidence(rule), **(state.last_beyond or {})}
        evidence["beyond_s"] = round(now - machine.pending_since, 3)
        evidence["delay_s"] = rule.delay_s
        return evidence

    def _clear_evidence(self, state: _RuleState, reading: PointReading, now: float) -> Evidence:
        rule, machine = state.rule, state.machine
        evidence: Evidence = {
            **_rule_evidence(rule),
            **_reading_evidence(reading),
            **state.detector.evidence(rule, now),
        }
        if machine.active_since is not None:
            evidence["active_s"] = round(now - machine.active_since, 3)
        if machine.clearing_since is not None:
            evidence["recovered_s"] = round(now - machine.clearing_since, 3)
        evidence["clear_delay_s"] = rule.clear_delay_s
        return evidence

    def _change(self, state: _RuleState, kind: FaultState, at: datetime, evidence: Evidence) -> FaultChange:
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


def _rule_evidence(rule: Rule) -> Evidence:
    evidence: Evidence = {"point": rule.point, "rule_type": rule.type.value}
    if rule.limit is not None:
        evidence["limit"] = rule.limit
        evidence["clear"] = rule.clear_level
    if rule.states:
        evidence["states"] = ",".join(rule.states)
    if rule.type in (RuleType.FLAG, RuleType.NOT_SEEN) and not rule.states:
        evidence["active_when"] = rule.active_when
    return evidence


def _reading_evidence(reading: PointReading) -> Evidence:
    evidence: Evidence = {"value": reading.value, "unit": reading.unit, "quality": reading.quality.value}
    if reading.raw is not None:
        evidence["raw"] = reading.raw
    if reading.detail:
        evidence["detail"] = reading.detail
    return evidence
