"""The rule engine against the real profiles: every rule type, delays, hysteresis, clear
delays, suppression windows, stale data and per-device overrides. Pure: times are passed in."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from edge.config import DeviceConfig, RuleOverride
from edge.errors import EdgeConfigError
from edge.model import FaultChange, PointReading, PointValue
from edge.rules import DeviceRules
from protocols.mqtt.messages import FaultState, Quality
from tests.unit.edge.fakes import profile

T0 = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)


class Case:
    """One device's rules, fed readings at given seconds."""

    def __init__(self, model: str = "dixell-xr75cx", **overrides: RuleOverride) -> None:
        self.profile = profile(model)
        config = DeviceConfig(id="case-7", unit=7, profile=model, location="aisle 3", rules=overrides)
        self.rules = DeviceRules(config, self.profile)

    def feed(self, t: float, **values: PointValue | PointReading) -> list[FaultChange]:
        """Readings of the named points (a plain value is a GOOD reading) at ``t`` seconds."""
        readings = {}
        for name, value in values.items():
            if not isinstance(value, PointReading):
                value = PointReading(name, value, Quality.GOOD, self.profile.point(name).unit)
            readings[name] = value
        return self.rules.evaluate(readings, t, T0 + timedelta(seconds=t))

    def codes(self, t: float, **values: PointValue | PointReading) -> list[tuple[str, str]]:
        return [(c.fault_code, c.state.value) for c in self.feed(t, **values)]


def stale(name: str) -> PointReading:
    return PointReading(name, None, Quality.STALE, detail="offline")


def bad(name: str, detail: str = "probe_fault") -> PointReading:
    return PointReading(name, None, Quality.BAD, "°C", raw=-32768, detail=detail)


# --- high / low limits ------------------------------------------------------------------------


def test_high_limit_raises_after_delay_with_evidence() -> None:
    case = Case()  # high_temperature: limit 8, clear 6, delay 1800 s
    assert case.feed(0, air_temp=9.0) == []
    assert case.feed(1799, air_temp=9.5) == []
    (change,) = case.feed(1800, air_temp=9.2)
    assert (change.fault_code, change.state) == ("high_temperature", FaultState.RAISED)
    assert change.device_id == "case-7" and change.device_model == "dixell-xr75cx" and change.location == "aisle 3"
    assert change.occurred_at == T0 + timedelta(seconds=1800)
    assert change.severity.value == "major" and change.fault_class.value == "food_safety"
    ev = change.evidence
    assert (ev["value"], ev["limit"], ev["clear"], ev["beyond_s"]) == (9.2, 8.0, 6.0, 1800)
    assert (ev["point"], ev["unit"], ev["delay_s"]) == ("air_temp", "°C", 1800)
    assert [f.fault_code for f in case.rules.active_faults()] == ["high_temperature"]


def test_dipping_below_the_limit_restarts_the_delay() -> None:
    case = Case()
    case.feed(0, air_temp=9.0)
    case.feed(1000, air_temp=7.9)  # below the limit, not below the clear level: still resets pending
    case.feed(1100, air_temp=9.0)
    assert case.feed(2899, air_temp=9.0) == []
    assert case.codes(2900, air_temp=9.0) == [("high_temperature", "raised")]


def test_exactly_at_the_limit_is_not_beyond() -> None:
    case = Case(high_temperature=RuleOverride(delay_s=0))
    assert case.feed(0, air_temp=8.0) == []
    assert case.codes(1, air_temp=8.1) == [("high_temperature", "raised")]


def test_hysteresis_clears_only_at_the_clear_level() -> None:
    case = Case(high_temperature=RuleOverride(delay_s=0))
    case.feed(0, air_temp=10.0)
    for t in range(1, 50):
        assert case.feed(t * 60, air_temp=7.0) == []  # between clear (6) and limit (8)
    (cleared,) = case.feed(3600, air_temp=6.0)
    assert cleared.state is FaultState.CLEARED
    assert (cleared.evidence["value"], cleared.evidence["clear"], cleared.evidence["active_s"]) == (6.0, 6.0, 3600)
    assert case.rules.active_faults() == []


def test_clear_delay_must_hold_recovered() -> None:
    case = Case(high_temperature=RuleOverride(delay_s=0, clear_delay_s=300))
    case.feed(0, air_temp=10.0)
    assert case.feed(100, air_temp=5.0) == []  # clearing
    assert case.feed(200, air_temp=7.0) == []  # back in the band: active again, no event
    assert case.feed(300, air_temp=5.0) == []
    assert case.feed(599, air_temp=5.0) == []
    (cleared,) = case.feed(600, air_temp=5.0)
    assert cleared.state is FaultState.CLEARED and cleared.evidence["recovered_s"] == 300


def test_low_limit_with_its_own_clear_level() -> None:
    case = Case()  # low_temperature: limit -2, clear 0, delay 1800
    case.feed(0, air_temp=-3.0)
    assert case.codes(1800, air_temp=-2.5) == [("low_temperature", "raised")]
    assert case.feed(1900, air_temp=-1.0) == []  # above the limit, below the clear level
    assert case.codes(2000, air_temp=0.0) == [("low_temperature", "cleared")]


# --- flags, states, probe faults ------------------------------------------------------------


def test_flag_rule_with_delay_and_without() -> None:
    case = Case()
    assert case.codes(0, door_alarm=True, high_pressure_alarm=True) == [("compressor_alarm", "raised")]
    assert case.codes(299, door_alarm=True) == []
    assert case.codes(300, door_alarm=True) == [("door_open", "raised")]
    assert case.codes(301, door_alarm=False, high_pressure_alarm=False) == [
        ("door_open", "cleared"),
        ("compressor_alarm", "cleared"),
    ]


def test_flag_rule_active_when_false() -> None:
    case = Case("storeguard-sco-lane")  # scanner_fault: scanner_ok false for 60 s
    assert case.feed(0, scanner_ok=True) == []
    assert case.feed(10, scanner_ok=False) == []
    assert case.codes(70, scanner_ok=False) == [("scanner_fault", "raised")]
    assert case.codes(71, scanner_ok=True) == [("scanner_fault", "cleared")]


def test_state_rule() -> None:
    case = Case("danfoss-ak-cc55")  # door_open: u00 in [door_open] for 300 s
    assert case.feed(0, u00_state="door_open") == []
    assert case.feed(100, u00_state="normal") == []
    case.feed(200, u00_state="door_open")
    assert case.codes(500, u00_state="door_open") == [("door_open", "raised")]
    change = case.rules.active_faults()[0]
    assert change.evidence["states"] == "door_open" and change.ticket_class.value == "store_task"
    assert case.codes(501, u00_state="defrost") == [("door_open", "cleared")]


def test_state_rule_with_several_states() -> None:
    case = Case("storeguard-sco-lane")  # bill_validator_jam, delay 0
    assert case.codes(0, bill_event="stacker_jam") == [("bill_validator_jam", "raised")]
    assert case.codes(1, bill_event="safe_jam") == []
    assert case.codes(2, bill_event="none") == [("bill_validator_jam", "cleared")]


def test_probe_fault_on_sentinel_after_delay_and_limits_hold() -> None:
    case = Case(high_temperature=RuleOverride(delay_s=0))
    case.feed(0, air_temp=9.0)  # high_temperature active
    assert case.feed(0.5, air_temp=bad("air_temp")) == []  # probe_fault pending; the limit holds
    (raised,) = case.feed(300.5, air_temp=bad("air_temp"))
    assert (raised.fault_code, raised.evidence["detail"], raised.evidence["raw"]) == (
        "probe_fault",
        "probe_fault",
        -32768,
    )
    assert sorted(f.fault_code for f in case.rules.active_faults()) == ["high_temperature", "probe_fault"]
    assert case.codes(400, air_temp=5.0) == [("high_temperature", "cleared"), ("probe_fault", "cleared")]


def test_implausible_value_is_a_probe_fault_not_a_high_temperature() -> None:
    case = Case(high_temperature=RuleOverride(delay_s=0), probe_fault=RuleOverride(delay_s=0))
    implausible = PointReading("air_temp", 150.0, Quality.BAD, "°C", raw=1500, detail="implausible")
    assert case.codes(0, air_temp=implausible) == [("probe_fault", "raised")]


# --- suppression ------------------------------------------------------------------------------


def test_no_high_temperature_during_defrost_and_its_after_window() -> None:
    # suppressed by defrost_active (after 1800 s) and door_alarm (after 600 s); a 2 h defrost is
    # also a defrost_overrun, which is not what this test is about
    case = Case(defrost_overrun=RuleOverride(enabled=False))
    case.feed(0, defrost_active=True, air_temp=12.0)
    assert case.feed(7200, defrost_active=True, air_temp=12.0) == []
    assert case.feed(7300, defrost_active=False, air_temp=12.0) == []  # defrost ended: window until 9100
    assert case.feed(9099, defrost_active=False, air_temp=12.0) == []
    assert case.feed(9100, defrost_active=False, air_temp=12.0) == []  # window over: pending starts now
    assert case.feed(10899, defrost_active=False, air_temp=12.0) == []
    assert case.codes(10900, defrost_active=False, air_temp=12.0) == [("high_temperature", "raised")]


def test_door_opening_resets_a_pending_high_temperature() -> None:
    case = Case()
    case.feed(0, door_alarm=False, air_temp=9.0)
    case.feed(1000, door_alarm=True, air_temp=9.0)  # door open: pending is dropped
    case.feed(1100, door_alarm=False, air_temp=9.0)  # closed; 600 s window
    assert case.feed(2000, door_alarm=False, air_temp=9.0) == []  # pending from 2000 only
    assert case.feed(3799, door_alarm=False, air_temp=9.0) == []
    assert case.codes(3800, door_alarm=False, air_temp=9.0) == [("high_temperature", "raised")]


def test_an_active_fault_can_still_clear_while_suppressed() -> None:
    case = Case(high_temperature=RuleOverride(delay_s=0))
    case.feed(0, air_temp=9.0)
    assert case.codes(10, defrost_active=True, air_temp=5.0) == [("high_temperature", "cleared")]


def test_unknown_suppression_point_keeps_the_last_known_state() -> None:
    case = Case(high_temperature=RuleOverride(delay_s=0))
    case.feed(0, defrost_active=True, air_temp=5.0)
    assert case.feed(10, defrost_active=stale("defrost_active"), air_temp=12.0) == []


# --- stale data -------------------------------------------------------------------------------


def test_stale_data_neither_raises_nor_clears() -> None:
    case = Case()
    case.feed(0, air_temp=9.0)
    (raised,) = case.feed(1800, air_temp=9.0)
    for t in range(1801, 20000, 600):
        assert case.feed(t, air_temp=stale("air_temp")) == []
    assert case.rules.active_faults() == [raised]
    assert case.codes(20000, air_temp=4.0) == [("high_temperature", "cleared")]


def test_stale_data_holds_a_pending_fault() -> None:
    case = Case()
    case.feed(0, air_temp=9.0)
    assert case.feed(1000, air_temp=stale("air_temp")) == []
    assert case.rules.phases()["high_temperature"] == "pending"
    assert case.codes(1800, air_temp=9.0) == [("high_temperature", "raised")]


# --- overrides --------------------------------------------------------------------------------


def test_overrides_change_limit_and_delay() -> None:
    case = Case(high_temperature=RuleOverride(limit=10.0, delay_s=60))
    assert case.feed(0, air_temp=9.5) == []
    assert case.feed(100, air_temp=9.5) == []  # under the new limit
    case.feed(200, air_temp=10.5)
    (raised,) = case.feed(260, air_temp=10.5)
    assert (raised.evidence["limit"], raised.evidence["clear"]) == (10.0, 6.0)


def test_override_can_disable_a_rule() -> None:
    case = Case(compressor_alarm=RuleOverride(enabled=False))
    assert case.feed(0, high_pressure_alarm=True) == []
    assert "compressor_alarm" not in [r.code for r in case.rules.rules]


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (
            {"high_temperature": RuleOverride(limit=5.0)},
            "rule 'high_temperature': clear level 6.0 must not be above the high limit 5.0",
        ),
        ({"door_open": RuleOverride(limit=3.0)}, "rule 'door_open': flag rule takes no 'limit'"),
        ({"no_such_rule": RuleOverride(delay_s=1)}, "override for unknown rule 'no_such_rule'"),
    ],
)
def test_invalid_override_is_a_config_error_naming_device_and_rule(
    overrides: dict[str, RuleOverride], message: str
) -> None:
    with pytest.raises(EdgeConfigError) as caught:
        Case("dixell-xr75cx", **overrides)
    assert "device 'case-7'" in str(caught.value)
    assert message in str(caught.value)
