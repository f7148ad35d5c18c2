"""The rule schema: which fields each rule type needs and takes, consistent clear levels,
the suppression forms, per-device overrides of the new parameters, and the new rules in the
built-in refrigeration profiles."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from device_profiles import ProfileRegistry, RuleType
from device_profiles.schema import DeviceProfile, Rule, SuppressAfter, Suppression
from edge.config import DeviceConfig, RuleOverride
from edge.errors import EdgeConfigError
from edge.rules import effective_rules

POINTS: list[dict[str, Any]] = [
    {"name": "air", "table": "holding", "address": 1, "scale": 0.1, "provenance": "t"},
    {"name": "defrost", "table": "discrete", "address": 2, "provenance": "t"},
    {"name": "u00", "table": "holding", "address": 3, "enum": {14: "defrost", 32: "power_up_delay"}, "provenance": "t"},
]


def profile(**rule: Any) -> DeviceProfile:
    return DeviceProfile.model_validate(
        {"model": "t", "manufacturer": "t", "kind": "refrigeration_controller", "points": POINTS,
         "rules": [{"code": "r", **rule}]}
    )


def refrigeration(model: str) -> DeviceProfile:
    found = ProfileRegistry.load().get(model)
    assert isinstance(found, DeviceProfile)
    return found


def message(exc: pytest.ExceptionInfo[ValidationError]) -> str:
    return str(exc.value.errors()[0]["msg"])


VALID = [
    {"type": "not_seen", "point": "defrost", "max_interval_s": 43200},
    {"type": "not_seen", "point": "u00", "states": ["defrost"], "max_interval_s": 43200},
    {"type": "creep", "point": "air", "limit": 1.0, "clear": 0.5, "window_s": 21600, "baseline_s": 604800},
    {"type": "rate", "point": "air", "limit": 5.0, "window_s": 600},
    {"type": "flag", "point": "defrost", "delay_s": 3600},
    {"type": "high_limit", "point": "air", "limit": 8, "suppress": [
        {"point": "u00", "states": ["power_up_delay"]}, {"after": "device_online", "after_s": 900},
        {"point": "defrost", "after_s": 1800}]},
]


@pytest.mark.parametrize("rule", VALID)
def test_valid_rules(rule: dict[str, Any]) -> None:
    profile(**rule)


@pytest.mark.parametrize(
    ("rule", "reason"),
    [
        ({"type": "not_seen", "point": "defrost"}, "not_seen rule needs 'max_interval_s'"),
        ({"type": "not_seen", "point": "defrost", "max_interval_s": 10, "limit": 1}, "not_seen rule takes no 'limit'"),
        ({"type": "creep", "point": "air", "limit": 1, "window_s": 60}, "creep rule needs 'baseline_s'"),
        ({"type": "creep", "point": "air", "limit": 1, "window_s": 600, "baseline_s": 60},
         "window_s 600.0 must be shorter than baseline_s 60.0"),
        ({"type": "creep", "point": "air", "limit": 1, "clear": 2, "window_s": 6, "baseline_s": 60},
         "clear level 2.0 must not be above the creep limit 1.0"),
        ({"type": "creep", "point": "air", "limit": -1, "window_s": 6, "baseline_s": 60}, "needs a 'limit' above 0"),
        ({"type": "rate", "point": "air", "limit": 5}, "rate rule needs 'window_s'"),
        ({"type": "rate", "point": "air", "limit": 5, "window_s": 60, "baseline_s": 600},
         "rate rule takes no 'baseline_s'"),
        ({"type": "rate", "point": "air", "limit": 5, "clear": 6, "window_s": 60},
         "clear level 6.0 must not be above the rise limit 5.0"),
        ({"type": "high_limit", "point": "air", "limit": 8, "window_s": 60}, "high_limit rule takes no 'window_s'"),
        ({"type": "flag", "point": "defrost", "max_interval_s": 60}, "flag rule takes no 'max_interval_s'"),
        ({"type": "high_limit", "point": "air", "limit": 8, "active_when": False},
         "'active_when' applies to flag and not_seen rules only"),
    ],
)
def test_fields_per_rule_type(rule: dict[str, Any], reason: str) -> None:
    with pytest.raises(ValidationError) as caught:
        Rule.model_validate({"code": "r", **rule})
    assert reason in message(caught)


@pytest.mark.parametrize(
    ("rule", "reason"),
    [
        ({"type": "not_seen", "point": "air", "max_interval_s": 60}, "need a boolean or enum point, 'air' is not"),
        ({"type": "not_seen", "point": "u00", "max_interval_s": 60}, "not_seen on the enum 'u00' needs 'states'"),
        ({"type": "not_seen", "point": "defrost", "states": ["defrost"], "max_interval_s": 60},
         "'defrost' is a bit; use 'active_when'"),
        ({"type": "not_seen", "point": "u00", "states": ["melt"], "max_interval_s": 60}, "states ['melt'] not in"),
        ({"type": "rate", "point": "u00", "limit": 5, "window_s": 60}, "rate rules need a numeric point"),
        ({"type": "creep", "point": "defrost", "limit": 1, "window_s": 6, "baseline_s": 60},
         "creep rules need a numeric point"),
        ({"type": "high_limit", "point": "air", "limit": 8, "suppress": [{"point": "u00"}]},
         "'u00', which is not a bit: name the enum 'states'"),
        ({"type": "high_limit", "point": "air", "limit": 8, "suppress": [{"point": "defrost", "states": ["x"]}]},
         "'states' of 'defrost', which is not an enum point"),
        ({"type": "high_limit", "point": "air", "limit": 8, "suppress": [{"point": "u00", "states": ["melt"]}]},
         "states ['melt'] not in 'u00'"),
        ({"type": "high_limit", "point": "air", "limit": 8, "suppress": [{"point": "nope"}]}, "unknown point 'nope'"),
    ],
)
def test_rules_against_their_points(rule: dict[str, Any], reason: str) -> None:
    with pytest.raises(ValidationError) as caught:
        profile(**rule)
    assert reason in message(caught)


@pytest.mark.parametrize(
    ("suppression", "reason"),
    [
        ({"point": "defrost", "after": "device_online", "after_s": 60}, "either a 'point' or an event"),
        ({"after_s": 60}, "either a 'point' or an event"),
        ({"after": "device_online"}, "'after: device_online' needs 'after_s' above 0"),
        ({"after": "device_online", "states": ["x"], "after_s": 5}, "'states' needs the enum 'point'"),
        ({"after": "power_on", "after_s": 60}, "Input should be 'device_online'"),
    ],
)
def test_suppression_forms(suppression: dict[str, Any], reason: str) -> None:
    with pytest.raises(ValidationError) as caught:
        Suppression.model_validate(suppression)
    assert reason in message(caught)


def test_the_boolean_point_form_still_works() -> None:
    s = Suppression.model_validate({"point": "defrost_active", "after_s": 1800})
    assert (s.point, s.states, s.after, s.after_s) == ("defrost_active", [], None, 1800)
    assert Suppression(after=SuppressAfter.DEVICE_ONLINE, after_s=900).point is None


def test_creep_min_history_defaults_to_the_baseline() -> None:
    rule = Rule(code="c", type=RuleType.CREEP, point="a", limit=1, window_s=60, baseline_s=600)
    assert rule.history_needed_s == 600
    assert rule.model_copy(update={"min_history_s": 0}).history_needed_s == 0


# --- overrides of the new parameters -------------------------------------------------------------


def device(**overrides: RuleOverride) -> DeviceConfig:
    return DeviceConfig(id="case-1", unit=1, profile="dixell-xr75cx", rules=overrides)


def test_overrides_of_the_new_parameters_are_applied_and_validated() -> None:
    dixell = refrigeration("dixell-xr75cx")
    rules = {r.code: r for r in effective_rules(dixell, device(
        defrost_missed=RuleOverride(max_interval_s=36000),
        temperature_creep=RuleOverride(limit=1.5, clear=1.0, window_s=3 * 3600, baseline_s=14 * 86400,
                                       min_history_s=86400),
    ))}
    assert rules["defrost_missed"].max_interval_s == 36000
    creep = rules["temperature_creep"]
    assert (creep.limit, creep.window_s, creep.baseline_s, creep.history_needed_s) == (1.5, 10800, 1209600, 86400)
    with pytest.raises(EdgeConfigError, match="rule 'high_temperature': high_limit rule takes no 'window_s'"):
        effective_rules(dixell, device(high_temperature=RuleOverride(window_s=60)))
    with pytest.raises(EdgeConfigError, match="window_s 700000.0 must be shorter than baseline_s 604800.0"):
        effective_rules(dixell, device(temperature_creep=RuleOverride(window_s=700000)))
    with pytest.raises(ValidationError):
        RuleOverride(max_interval_s=0)


# --- the built-in refrigeration profiles ---------------------------------------------------------

REFRIGERATION = ["dixell-xr75cx", "danfoss-ak-cc55", "danfoss-ekc-202", "eliwell-idplus-902", "carel-ir33-wbref"]


@pytest.mark.parametrize("model", REFRIGERATION)
def test_refrigeration_profiles_have_the_defrost_and_creep_rules(model: str) -> None:
    p = refrigeration(model)
    rules = {r.code: r for r in p.rules}
    overrun, missed, creep = rules["defrost_overrun"], rules["defrost_missed"], rules["temperature_creep"]
    assert overrun.delay_s == 3600 and p.point(overrun.point).role in ("defrost_active", "controller_state")
    assert (missed.type, missed.max_interval_s) == (RuleType.NOT_SEEN, 43200)
    assert (creep.type, creep.limit, creep.window_s, creep.baseline_s) == (RuleType.CREEP, 1.0, 21600, 604800)
    assert p.point(creep.point).role == "air_temperature"
    assert creep.suppress, "defrost samples must stay out of the baseline"
    power_up = [
        s for r in (rules["high_temperature"], creep) for s in r.suppress
        if s.after is SuppressAfter.DEVICE_ONLINE or "power_up_delay" in s.states
    ]
    assert power_up and all(s.after_s == 900 for s in power_up)


@pytest.mark.parametrize("model", ["danfoss-ekc-202", "eliwell-idplus-902", "carel-ir33-wbref"])
def test_high_temperature_waits_out_the_power_up(model: str) -> None:
    high = next(r for r in refrigeration(model).rules if r.code == "high_temperature")
    assert [s.after_s for s in high.suppress if s.after is SuppressAfter.DEVICE_ONLINE] == [900]


def test_danfoss_ak_cc55_uses_its_power_up_state() -> None:
    p = refrigeration("danfoss-ak-cc55")
    high = next(r for r in p.rules if r.code == "high_temperature")
    assert any(s.point == "u00_state" and s.states == ["power_up_delay"] for s in high.suppress)
    missed = next(r for r in p.rules if r.code == "defrost_missed")
    assert (missed.point, missed.states) == ("u00_state", ["defrost"])
