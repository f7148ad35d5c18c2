"""DeviceRules.reconfigure: new limits and delays swapped in without losing a rule's state."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from device_profiles.schema import Rule
from edge.config import DeviceConfig, RuleOverride
from edge.errors import EdgeConfigError
from edge.rules import DeviceRules, effective_rules
from protocols.mqtt.messages import FaultState
from tests.unit.edge.fakes import profile
from tests.unit.edge.test_rules import Case

T0 = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)


def rules_with(case: Case, **overrides: RuleOverride) -> list[Rule]:
    config = DeviceConfig(id="case-7", unit=7, profile=case.profile.model, rules=overrides)
    return effective_rules(case.profile, config)


def at(t: float) -> datetime:
    return T0 + timedelta(seconds=t)


def test_a_kept_rule_keeps_its_pending_timer_under_the_new_delay() -> None:
    case = Case()  # high_temperature: limit 8, delay 1800
    case.feed(0, air_temp=9.0)
    assert case.rules.reconfigure(rules_with(case, high_temperature=RuleOverride(delay_s=600)), 100, at(100)) == []
    assert case.rules.phases()["high_temperature"] == "pending"
    assert case.feed(599, air_temp=9.0) == []
    (raised,) = case.feed(600, air_temp=9.0)  # pending since 0, new delay 600
    assert raised.fault_code == "high_temperature" and raised.evidence["delay_s"] == 600


def test_a_kept_active_fault_stays_active_and_clears_at_the_new_level() -> None:
    case = Case(high_temperature=RuleOverride(delay_s=0))
    case.feed(0, air_temp=9.0)
    new = rules_with(case, high_temperature=RuleOverride(delay_s=0, limit=12.0, clear=10.0))
    assert case.rules.reconfigure(new, 10, at(10)) == []
    assert [f.fault_code for f in case.rules.active_faults()] == ["high_temperature"]
    assert case.feed(20, air_temp=11.0) == []  # no new raise: it is active
    (cleared,) = case.feed(30, air_temp=9.5)  # below the new clear level 10
    assert cleared.state is FaultState.CLEARED and cleared.evidence["clear"] == 10.0


def test_new_limits_apply_to_an_idle_rule() -> None:
    case = Case()
    case.rules.reconfigure(rules_with(case, high_temperature=RuleOverride(limit=10.0, delay_s=0)), 0, at(0))
    assert case.feed(1, air_temp=9.5) == []
    assert case.codes(2, air_temp=10.5) == [("high_temperature", "raised")]


@pytest.mark.parametrize(("removed", "reason"), [(True, "rule_removed"), (False, "rule_disabled")])
def test_an_active_fault_of_a_removed_or_disabled_rule_is_cleared(removed: bool, reason: str) -> None:
    case = Case(high_temperature=RuleOverride(delay_s=0))
    (raised,) = case.feed(0, air_temp=9.0)
    if removed:
        new = [r for r in rules_with(case) if r.code != "high_temperature"]
    else:
        new = rules_with(case, high_temperature=RuleOverride(enabled=False))
    (cleared,) = case.rules.reconfigure(new, 60, at(60))
    assert (cleared.fault_code, cleared.state, cleared.occurred_at) == ("high_temperature", FaultState.CLEARED, at(60))
    assert cleared.evidence["reason"] == reason and cleared.evidence["active_s"] == 60
    assert cleared.evidence["raised_at"] == raised.occurred_at.isoformat()
    assert case.rules.active_faults() == []
    assert "high_temperature" not in case.rules.phases()
    assert case.feed(120, air_temp=20.0) == []


def test_a_removed_idle_rule_goes_quietly_and_a_new_code_starts_idle() -> None:
    base = Case()
    reduced = DeviceRules(
        DeviceConfig(id="case-7", unit=7, profile=base.profile.model),
        base.profile,
        [r for r in base.profile.rules if r.code != "high_temperature"],
    )
    assert "high_temperature" not in reduced.phases()
    assert reduced.reconfigure(list(base.profile.rules), 0, at(0)) == []
    assert reduced.phases()["high_temperature"] == "normal"


def test_a_re_enabled_rule_starts_idle() -> None:
    case = Case(high_temperature=RuleOverride(delay_s=0))
    case.feed(0, air_temp=9.0)
    case.rules.reconfigure(rules_with(case, high_temperature=RuleOverride(enabled=False)), 1, at(1))
    case.rules.reconfigure(rules_with(case, high_temperature=RuleOverride(delay_s=0)), 2, at(2))
    assert case.rules.phases()["high_temperature"] == "normal"
    assert case.codes(3, air_temp=9.0) == [("high_temperature", "raised")]


def test_suppressions_of_kept_rules_keep_their_switch_state() -> None:
    case = Case(high_temperature=RuleOverride(delay_s=0))
    case.feed(0, defrost_active=True, air_temp=5.0)
    case.rules.reconfigure(rules_with(case, high_temperature=RuleOverride(delay_s=0, limit=9.0)), 1, at(1))
    assert case.feed(2, air_temp=12.0) == []  # defrost still known to be on


def test_duplicate_codes_are_refused_and_nothing_changes() -> None:
    case = Case()
    case.feed(0, air_temp=9.0)
    rules = rules_with(case)
    with pytest.raises(EdgeConfigError, match="duplicate rule codes"):
        case.rules.reconfigure([*rules, rules[0]], 1, at(1))
    assert case.rules.phases()["high_temperature"] == "pending"
    assert [r.code for r in case.rules.rules] == [r.code for r in profile("dixell-xr75cx").rules]
