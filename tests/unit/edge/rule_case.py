"""A synthetic case controller for the rule-type tests: one profile, rules given per test."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from device_profiles.schema import DeviceProfile, Rule
from edge.config import DeviceConfig, RuleOverride
from edge.model import FaultChange, PointReading, PointValue
from edge.rules import DeviceRules
from protocols.mqtt.messages import Quality

T0 = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)
HOUR = 3600.0
DAY = 86400.0

POINTS: list[dict[str, Any]] = [
    {"name": "air", "table": "holding", "address": 1, "scale": 0.1, "unit": "°C", "provenance": "test"},
    {"name": "defrost", "table": "discrete", "address": 2, "provenance": "test"},
    {"name": "door", "table": "discrete", "address": 3, "provenance": "test"},
    {
        "name": "u00",
        "table": "holding",
        "address": 4,
        "type": "uint16",
        "enum": {0: "normal", 14: "defrost", 17: "door_open", 32: "power_up_delay"},
        "provenance": "test",
    },
]


def make_profile(*rules: Mapping[str, Any]) -> DeviceProfile:
    return DeviceProfile.model_validate(
        {"model": "test-case", "manufacturer": "Test", "kind": "refrigeration_controller", "points": POINTS,
         "rules": list(rules)}
    )


def rule(code: str, type: str, point: str, **fields: Any) -> dict[str, Any]:
    return {"code": code, "type": type, "point": point, **fields}


class RuleCase:
    """The rules of one synthetic device, fed readings at given seconds (``offset``: the start of
    this run's monotonic clock on the wall clock, so a second instance can play a restart)."""

    def __init__(self, *rules: Mapping[str, Any], offset: float = 0.0, **overrides: RuleOverride) -> None:
        self.profile = make_profile(*rules)
        self.config = DeviceConfig(id="case-1", unit=1, profile="test-case", rules=overrides)
        self.rules = DeviceRules(self.config, self.profile)
        self.offset = offset

    def at(self, t: float) -> datetime:
        return T0 + timedelta(seconds=self.offset + t)

    def feed(self, t: float, **values: PointValue | PointReading) -> list[FaultChange]:
        readings = {}
        for name, value in values.items():
            if not isinstance(value, PointReading):
                value = PointReading(name, value, Quality.GOOD, self.profile.point(name).unit)
            readings[name] = value
        return self.rules.evaluate(readings, t, self.at(t))

    def codes(self, t: float, **values: PointValue | PointReading) -> list[tuple[str, str]]:
        return [(c.fault_code, c.state.value) for c in self.feed(t, **values)]

    def effective(self) -> list[Rule]:
        return list(self.rules.rules)


def stale(name: str) -> PointReading:
    return PointReading(name, None, Quality.STALE, detail="offline")
