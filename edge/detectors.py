"""What a reading means for one rule (edge layer): beyond the limit, recovered, or unknown. Pure.

Limit, flag, state and probe_fault rules judge each reading on its own. ``not_seen``,
``creep`` and ``rate`` rules remember something between readings: when the active state was
last seen, a short mean and a rolling baseline, the recent samples. That memory can be
exported and loaded again after a restart; times in it are wall-clock stamps (``Timebase``),
because the monotonic clock starts again at every start.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Protocol

from device_profiles.schema import Rule, RuleType
from edge.model import PointReading
from protocols.mqtt.messages import Quality

Evidence = dict[str, float | int | bool | str | None]
Observation = tuple[bool, bool] | None  # (beyond, recovered); None: the reading says nothing
Saved = dict[str, object]  # JSON-able
MAX_RATE_SAMPLES = 2000  # a rate window keeps at most this many candidate minima


@dataclass(frozen=True, slots=True)
class Timebase:
    """One moment on both clocks: turns monotonic times into wall-clock stamps and back."""

    now: float  # monotonic
    at: datetime  # aware wall clock

    def wall(self, t: float) -> str:
        return (self.at - timedelta(seconds=self.now - t)).isoformat()

    def mono(self, stamp: object) -> float:
        """A saved stamp on this run's monotonic clock; never in the future."""
        if not isinstance(stamp, str):
            raise ValueError(f"not a timestamp: {stamp!r}")
        then = datetime.fromisoformat(stamp)
        if then.tzinfo is None:
            raise ValueError(f"timestamp without a time zone: {stamp!r}")
        return self.now - max(0.0, (self.at - then).total_seconds())


def number(value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError(f"not a number: {value!r}")
    return float(value)


class Detector(Protocol):
    def start(self, now: float) -> None:
        """The rule starts running at ``now`` (created, or added by a reconfiguration)."""

    def observe(
        self, rule: Rule, reading: PointReading | None, now: float, *, suppressed: bool, active: bool
    ) -> Observation:
        """Judge one poll's reading of the rule's point. ``suppressed``: a suppression holds the
        rule off now; ``active``: the rule's fault is raised."""
        ...

    def evidence(self, rule: Rule, now: float) -> Evidence: ...

    def export(self, base: Timebase) -> Saved: ...

    def load(self, saved: Mapping[str, object], base: Timebase) -> None:
        """Resume exported memory; ValueError (or KeyError, TypeError) when it is not valid."""


def detector_for(rule: Rule) -> Detector:
    if rule.type is RuleType.NOT_SEEN:
        return NotSeen()
    if rule.type is RuleType.CREEP:
        return Creep()
    if rule.type is RuleType.RATE:
        return Rate()
    return Instant()


def good_number(reading: PointReading | None) -> float | None:
    """The value of a good numeric reading, else None (unknown)."""
    if reading is None or reading.quality is not Quality.GOOD:
        return None
    value = reading.value
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def observe(rule: Rule, reading: PointReading | None) -> Observation:
    """(beyond, recovered) of one reading for a rule that judges readings on their own."""
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
    measured = good_number(reading)
    if measured is None:
        return None
    assert rule.limit is not None and rule.clear_level is not None
    if rule.type is RuleType.HIGH_LIMIT:
        return measured > rule.limit, measured <= rule.clear_level
    return measured < rule.limit, measured >= rule.clear_level


class Instant:
    """high_limit, low_limit, flag, state, probe_fault: no memory."""

    def start(self, now: float) -> None:
        pass

    def observe(
        self, rule: Rule, reading: PointReading | None, now: float, *, suppressed: bool, active: bool
    ) -> Observation:
        return observe(rule, reading)

    def evidence(self, rule: Rule, now: float) -> Evidence:
        return {}

    def export(self, base: Timebase) -> Saved:
        return {}

    def load(self, saved: Mapping[str, object], base: Timebase) -> None:
        pass


@dataclass(slots=True)
class NotSeen:
    """not_seen: overdue when the active state was last seen ``max_interval_s`` ago (or the rule
    started that long ago). Unknown data neither makes it overdue nor counts as seen."""

    last_seen: float | None = None

    def start(self, now: float) -> None:
        if self.last_seen is None:
            self.last_seen = now

    def observe(
        self, rule: Rule, reading: PointReading | None, now: float, *, suppressed: bool, active: bool
    ) -> Observation:
        self.start(now)
        if reading is None or reading.quality is not Quality.GOOD:
            return None
        if (reading.value in rule.states) if rule.states else (reading.value is rule.active_when):
            self.last_seen = now
            return False, True
        assert self.last_seen is not None and rule.max_interval_s is not None
        overdue = now - self.last_seen >= rule.max_interval_s
        return overdue, not overdue

    def evidence(self, rule: Rule, now: float) -> Evidence:
        unseen = None if self.last_seen is None else round(now - self.last_seen, 3)
        return {"unseen_s": unseen, "max_interval_s": rule.max_interval_s}

    def export(self, base: Timebase) -> Saved:
        return {} if self.last_seen is None else {"last_seen": base.wall(self.last_seen)}

    def load(self, saved: Mapping[str, object], base: Timebase) -> None:
        if "last_seen" in saved:
            self.last_seen = base.mono(saved["last_seen"])


def _ewma(mean: float, value: float, dt: float, tau: float) -> float:
    """A time-weighted exponential mean: ``value`` held for ``dt`` seconds, time constant ``tau``."""
    weight = 1.0 - math.exp(-dt / tau)
    return mean + weight * (value - mean)


@dataclass(slots=True)
class Creep:
    """creep: a short mean (time constant ``window_s``) against a rolling baseline (``baseline_s``),
    both time-weighted. Suppressed and unknown samples are left out of both (a gap: the next
    sample only restarts the weighting). The baseline stops learning while the fault is raised,
    so a leak does not become the new normal. No judgement before ``history_needed_s`` of data."""

    short: float | None = None
    baseline: float | None = None
    history_s: float = 0.0
    last_t: float | None = None  # the previous sample taken in; None after a gap

    def start(self, now: float) -> None:
        pass

    def observe(
        self, rule: Rule, reading: PointReading | None, now: float, *, suppressed: bool, active: bool
    ) -> Observation:
        value = good_number(reading)
        if value is None or suppressed:
            self.last_t = None
        else:
            self._take(rule, value, now, learn=not active)
        return self._judge(rule)

    def _take(self, rule: Rule, value: float, now: float, *, learn: bool) -> None:
        assert rule.window_s is not None and rule.baseline_s is not None
        if self.short is None or self.baseline is None:
            self.short = self.baseline = value
        elif self.last_t is not None and now > self.last_t:
            dt = now - self.last_t
            self.short = _ewma(self.short, value, dt, rule.window_s)
            if learn:
                self.baseline = _ewma(self.baseline, value, dt, rule.baseline_s)
            self.history_s += dt
        self.last_t = now

    def _judge(self, rule: Rule) -> Observation:
        if self.short is None or self.baseline is None or self.history_s < rule.history_needed_s:
            return None
        assert rule.limit is not None and rule.clear_level is not None
        rise = self.short - self.baseline
        return rise > rule.limit, rise <= rule.clear_level

    def evidence(self, rule: Rule, now: float) -> Evidence:
        rise = None if self.short is None or self.baseline is None else round(self.short - self.baseline, 3)
        return {
            "short_mean": None if self.short is None else round(self.short, 3),
            "baseline": None if self.baseline is None else round(self.baseline, 3),
            "rise": rise,
            "window_s": rule.window_s,
            "baseline_s": rule.baseline_s,
            "history_s": round(self.history_s, 3),
        }

    def export(self, base: Timebase) -> Saved:
        if self.short is None or self.baseline is None:
            return {}
        return {"short": self.short, "baseline": self.baseline, "history_s": self.history_s}

    def load(self, saved: Mapping[str, object], base: Timebase) -> None:
        if not saved:
            return
        short, baseline, history = (number(saved[k]) for k in ("short", "baseline", "history_s"))
        if history < 0:
            raise ValueError(f"negative history_s {history}")
        self.short, self.baseline, self.history_s, self.last_t = short, baseline, history, None


@dataclass(slots=True)
class Rate:
    """rate: the rise of the value over the last ``window_s``: now minus the lowest value in the
    window (kept as a deque of candidate minima, oldest first, values increasing)."""

    minima: deque[tuple[float, float]] = field(default_factory=deque)
    rise: float | None = None

    def start(self, now: float) -> None:
        pass

    def observe(
        self, rule: Rule, reading: PointReading | None, now: float, *, suppressed: bool, active: bool
    ) -> Observation:
        value = good_number(reading)
        if value is None:
            return None
        assert rule.window_s is not None and rule.limit is not None and rule.clear_level is not None
        self._push(now, value)
        while now - self.minima[0][0] > rule.window_s:
            self.minima.popleft()
        self.rise = value - self.minima[0][1]
        return self.rise > rule.limit, self.rise <= rule.clear_level

    def evidence(self, rule: Rule, now: float) -> Evidence:
        return {"rise": None if self.rise is None else round(self.rise, 3), "window_s": rule.window_s}

    def export(self, base: Timebase) -> Saved:
        return {"minima": [[base.wall(t), v] for t, v in self.minima]} if self.minima else {}

    def load(self, saved: Mapping[str, object], base: Timebase) -> None:
        entries = saved.get("minima", [])
        if not isinstance(entries, list):
            raise ValueError("'minima' is not a list")
        minima = sorted((base.mono(stamp), number(value)) for stamp, value in entries)
        self.minima = deque()
        for t, value in minima:
            self._push(t, value)

    def _push(self, t: float, value: float) -> None:
        while self.minima and self.minima[-1][1] >= value:
            self.minima.pop()
        self.minima.append((t, value))
        if len(self.minima) > MAX_RATE_SAMPLES:
            self.minima.popleft()
