"""Suppression windows of a device's rules (edge layer): defrost, door, power-up. Pure.

A suppression follows a point (a bit that is true, or an enum in some states, e.g. Danfoss
u00 ``power_up_delay``) and holds its rules off while it is on and for ``after_s`` after it
turned off; or it follows the device coming online (its first good poll, or its return after
an outage: power came back) and holds them off for ``after_s`` from then. Unknown readings
keep what was known. The state can be exported (wall-clock stamps) and resumed after a restart.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from device_profiles.schema import Rule, Suppression
from edge.detectors import Saved, Timebase
from edge.model import PointReading
from protocols.mqtt.messages import Quality


def switch_key(suppression: Suppression) -> str:
    """``defrost_active``, or ``u00_state:power_up_delay`` for an enum in some states."""
    assert suppression.point is not None
    if not suppression.states:
        return suppression.point
    return f"{suppression.point}:{','.join(sorted(suppression.states))}"


@dataclass(slots=True)
class Switch:
    """What the rules know of one suppressing point: on now, or when it last went off."""

    point: str
    states: frozenset[str] = frozenset()  # empty: a bit, on when true
    on: bool = False
    off_since: float | None = None

    def update(self, reading: PointReading | None, now: float) -> None:
        if reading is None or reading.quality is not Quality.GOOD:
            return  # unknown: keep what we knew
        on = reading.value in self.states if self.states else reading.value is True
        if on:
            self.on, self.off_since = True, None
        elif self.on:
            self.on, self.off_since = False, now

    def suppresses(self, after_s: float, now: float) -> bool:
        return self.on or (self.off_since is not None and now - self.off_since < after_s)

    def export(self, base: Timebase) -> Saved:
        return {"on": self.on, "off_since": None if self.off_since is None else base.wall(self.off_since)}

    def load(self, saved: Mapping[str, object], base: Timebase) -> None:
        on, off_since = saved.get("on"), saved.get("off_since")
        if not isinstance(on, bool):
            raise ValueError(f"'on' is not true or false: {on!r}")
        self.on, self.off_since = on, None if off_since is None else base.mono(off_since)


class Suppressions:
    """Every suppression window of one device's rules."""

    def __init__(self, rules: Iterable[Rule], previous: Suppressions | None = None) -> None:
        self.switches: dict[str, Switch] = {}
        for rule in rules:
            for s in rule.suppress:
                if s.point is not None:
                    key = switch_key(s)
                    kept = previous.switches.get(key) if previous else None
                    self.switches[key] = kept or Switch(s.point, frozenset(s.states))
        self.online_at: float | None = previous.online_at if previous else None
        self._resumed: bool = previous._resumed if previous else False

    def update(self, readings: Mapping[str, PointReading], now: float) -> None:
        for switch in self.switches.values():
            switch.update(readings.get(switch.point), now)

    def device_online(self, now: float, *, first_poll: bool) -> None:
        """The device started answering at ``now``. The first good poll after an edge restart
        keeps the online moment saved before it (the device may have answered all along)."""
        if first_poll and self._resumed:
            self._resumed = False
            return
        self.online_at, self._resumed = now, False

    def suppresses(self, rule: Rule, now: float) -> bool:
        return any(self._holds(s, now) for s in rule.suppress)

    def _holds(self, suppression: Suppression, now: float) -> bool:
        if suppression.point is None:  # after: device_online
            return self.online_at is not None and now - self.online_at < suppression.after_s
        return self.switches[switch_key(suppression)].suppresses(suppression.after_s, now)

    def export(self, base: Timebase) -> Saved:
        saved: Saved = {"switches": {key: switch.export(base) for key, switch in self.switches.items()}}
        if self.online_at is not None:
            saved["online_at"] = base.wall(self.online_at)
        return saved

    def load(self, saved: Mapping[str, object], base: Timebase) -> list[str]:
        """Resume saved windows; return what was ignored (unknown or invalid), for a warning."""
        ignored = []
        switches = saved.get("switches", {})
        for key, value in switches.items() if isinstance(switches, dict) else ():
            switch = self.switches.get(key)
            try:
                if switch is None or not isinstance(value, Mapping):
                    raise ValueError("no such suppression" if switch is None else "not an object")
                switch.load(value, base)
            except (ValueError, TypeError) as exc:
                ignored.append(f"suppression {key!r}: {exc}")
        if "online_at" in saved:
            try:
                self.online_at, self._resumed = base.mono(saved["online_at"]), True
            except ValueError as exc:
                ignored.append(f"online_at: {exc}")
        return ignored
