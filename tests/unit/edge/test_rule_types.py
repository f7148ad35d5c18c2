"""The rule types that remember: not_seen (defrost missed), creep (a rolling baseline for
leaks) and rate (rate of rise); and the suppressions by an enum state and by the device
coming online. Pure: times are passed in."""

from __future__ import annotations

from edge.config import RuleOverride
from tests.unit.edge.rule_case import DAY, HOUR, RuleCase, rule, stale

MISSED = rule("defrost_missed", "not_seen", "defrost", max_interval_s=12 * HOUR)
CREEP = rule(
    "temperature_creep", "creep", "air", limit=1.0, clear=0.5, window_s=6 * HOUR, baseline_s=7 * DAY,
    min_history_s=2 * DAY, delay_s=HOUR, suppress=[{"point": "defrost", "after_s": 1800}],
)
RATE = rule("rapid_rise", "rate", "air", limit=5.0, clear=2.0, window_s=600)


# --- not_seen ---------------------------------------------------------------------------------


def test_not_seen_raises_after_the_interval_and_clears_when_seen() -> None:
    case = RuleCase(MISSED)
    assert case.feed(0, defrost=False) == []
    assert case.feed(12 * HOUR - 1, defrost=False) == []
    (raised,) = case.feed(12 * HOUR, defrost=False)
    assert raised.fault_code == "defrost_missed"
    assert (raised.evidence["unseen_s"], raised.evidence["max_interval_s"]) == (12 * HOUR, 12 * HOUR)
    assert case.codes(12 * HOUR + 60, defrost=True) == [("defrost_missed", "cleared")]
    assert case.feed(24 * HOUR + 59, defrost=False) == []  # the interval counts from the last defrost
    assert case.codes(24 * HOUR + 60, defrost=False) == [("defrost_missed", "raised")]


def test_a_defrost_within_the_interval_restarts_it() -> None:
    case = RuleCase(MISSED)
    case.feed(0, defrost=False)
    case.feed(6 * HOUR, defrost=True)
    case.feed(6 * HOUR + 1800, defrost=False)
    assert case.feed(18 * HOUR - 1, defrost=False) == []
    assert case.codes(18 * HOUR, defrost=False) == [("defrost_missed", "raised")]


def test_stale_data_neither_raises_nor_resets_not_seen() -> None:
    case = RuleCase(MISSED)
    case.feed(0, defrost=False)
    assert case.feed(13 * HOUR, defrost=stale("defrost")) == []  # overdue, but unknown
    assert case.codes(13 * HOUR + 5, defrost=False) == [("defrost_missed", "raised")]  # counted from 0
    assert case.feed(14 * HOUR, defrost=stale("defrost")) == []  # and unknown does not clear it
    assert [f.fault_code for f in case.rules.active_faults()] == ["defrost_missed"]


def test_not_seen_on_enum_states() -> None:
    case = RuleCase(rule("defrost_missed", "not_seen", "u00", states=["defrost"], max_interval_s=12 * HOUR))
    case.feed(0, u00="normal")
    case.feed(HOUR, u00="defrost")
    assert case.feed(13 * HOUR - 1, u00="door_open") == []
    assert case.codes(13 * HOUR, u00="normal") == [("defrost_missed", "raised")]
    assert case.codes(13 * HOUR + 1, u00="defrost") == [("defrost_missed", "cleared")]


def test_not_seen_with_active_when_false_and_an_override() -> None:
    case = RuleCase(
        rule("door_never_closed", "not_seen", "door", active_when=False, max_interval_s=HOUR),
        door_never_closed=RuleOverride(max_interval_s=600),
    )
    case.feed(0, door=False)
    assert case.feed(599, door=True) == []
    assert case.codes(600, door=True) == [("door_never_closed", "raised")]


def test_a_not_seen_rule_added_by_reconfigure_counts_from_then() -> None:
    case = RuleCase(rule("high", "high_limit", "air", limit=8.0))
    case.feed(0, air=3.0, defrost=False)
    new = RuleCase(rule("high", "high_limit", "air", limit=8.0), MISSED).effective()
    case.rules.reconfigure(new, 5 * HOUR, case.at(5 * HOUR))
    assert case.feed(17 * HOUR - 1, air=3.0, defrost=False) == []
    assert case.codes(17 * HOUR, air=3.0, defrost=False) == [("defrost_missed", "raised")]


# --- creep ------------------------------------------------------------------------------------


def feed_for(case: RuleCase, start: float, end: float, step: float = 600, **values: object) -> list[tuple[float, str]]:
    """Feed the same values every ``step`` seconds; return (time, code/state) of every change."""
    seen = []
    t = start
    while t < end:
        seen += [(t, f"{c.fault_code}/{c.state.value}") for c in case.feed(t, **values)]  # type: ignore[arg-type]
        t += step
    return seen


def test_creep_stays_quiet_on_a_steady_case_and_raises_on_a_sustained_rise() -> None:
    case = RuleCase(CREEP)
    assert feed_for(case, 0, 10 * DAY, air=3.0, defrost=False) == []
    changes = feed_for(case, 10 * DAY, 11 * DAY, air=5.0, defrost=False)  # +2 K from now on
    (t, what), = changes
    assert what == "temperature_creep/raised"
    assert 10 * DAY + 4 * HOUR < t < 10 * DAY + 7 * HOUR  # the 6 h mean crosses +1 K, then 1 h delay
    evidence = case.rules.active_faults()[0].evidence
    rise, baseline = evidence["rise"], evidence["baseline"]
    assert isinstance(rise, float) and rise > 1.0 and isinstance(baseline, float) and 3.0 < baseline < 3.2
    assert (evidence["window_s"], evidence["baseline_s"]) == (6 * HOUR, 7 * DAY)


def test_creep_needs_its_minimum_history_before_it_can_raise() -> None:
    case = RuleCase(CREEP)  # min_history_s: 2 days
    feed_for(case, 0, DAY, air=3.0, defrost=False)
    changes = feed_for(case, DAY, 3 * DAY, air=5.0, defrost=False)
    assert [what for _, what in changes] == ["temperature_creep/raised"]
    assert 2 * DAY + HOUR <= changes[0][0] < 2 * DAY + HOUR + 600  # not before 2 days of data, then 1 h


def test_defrost_samples_are_left_out_of_both_means() -> None:
    case = RuleCase(CREEP)
    seen = []
    for cycle in range(30):  # 10 days of 8 h cycles: 30 min of defrost at 12 °C, otherwise 3 °C
        start = cycle * 8 * HOUR
        seen += feed_for(case, start, start + 1800, step=300, air=12.0, defrost=True)
        seen += feed_for(case, start + 1800, start + 8 * HOUR, step=300, air=3.0, defrost=False)
    assert seen == []
    changes = feed_for(case, 10 * DAY, 11 * DAY, air=5.0, defrost=False)
    assert [what for _, what in changes] == ["temperature_creep/raised"]
    baseline = case.rules.active_faults()[0].evidence["baseline"]
    assert isinstance(baseline, float) and baseline < 3.2  # with the 12 °C defrosts in it: about 3.6


def test_a_raised_creep_keeps_its_baseline_and_clears_below_the_clear_level() -> None:
    case = RuleCase(CREEP)
    feed_for(case, 0, 8 * DAY, air=3.0, defrost=False)
    feed_for(case, 8 * DAY, 9 * DAY, air=5.0, defrost=False)
    assert feed_for(case, 9 * DAY, 23 * DAY, step=1800, air=5.0, defrost=False) == []  # a leak is not the new normal
    changes = feed_for(case, 23 * DAY, 24 * DAY, air=3.0, defrost=False)  # recharged
    assert [what for _, what in changes] == ["temperature_creep/cleared"]
    assert changes[0][0] < 23 * DAY + 12 * HOUR


def test_stale_data_leaves_the_means_alone() -> None:
    case = RuleCase(CREEP)
    feed_for(case, 0, 3 * DAY, air=3.0, defrost=False)
    assert feed_for(case, 3 * DAY, 5 * DAY, air=stale("air"), defrost=False) == []
    assert feed_for(case, 5 * DAY, 6 * DAY, air=3.0, defrost=False) == []


# --- rate -------------------------------------------------------------------------------------


def test_rate_raises_on_a_fast_rise_and_clears_when_it_flattens() -> None:
    case = RuleCase(RATE)
    assert case.feed(0, air=3.0) == []
    assert case.feed(300, air=6.0) == []
    (raised,) = case.feed(600, air=9.0 + 0.1)
    assert raised.fault_code == "rapid_rise" and raised.evidence["rise"] == 6.1
    assert raised.evidence["window_s"] == 600
    assert case.feed(900, air=9.1) == []  # the rise since 300 s is still 3.1 K (above clear 2)
    assert case.codes(1200, air=9.1) == [("rapid_rise", "cleared")]


def test_a_slow_rise_is_not_a_rate_fault() -> None:
    case = RuleCase(RATE)
    for step in range(24):  # +1 K every 300 s: 2 K per window
        assert case.feed(step * 300, air=3.0 + step) == []


def test_rate_ignores_unknown_readings_and_old_minima() -> None:
    case = RuleCase(RATE)
    case.feed(0, air=3.0)
    assert case.feed(300, air=stale("air")) == []
    assert case.feed(700, air=9.0) == []  # the 3.0 at 0 s is older than the window
    assert case.codes(800, air=14.5) == [("rapid_rise", "raised")]


# --- suppression by an enum state and by the device coming online -----------------------------


def test_enum_state_suppression_holds_a_rule_off_and_for_after_s() -> None:
    case = RuleCase(rule("high", "high_limit", "air", limit=8.0, delay_s=0,
                         suppress=[{"point": "u00", "states": ["power_up_delay"], "after_s": 600}]))
    assert case.feed(0, u00="power_up_delay", air=12.0) == []
    assert case.feed(100, u00="normal", air=12.0) == []
    assert case.feed(699, u00="normal", air=12.0) == []
    assert case.codes(700, u00="normal", air=12.0) == [("high", "raised")]


def test_device_online_suppression_after_the_first_poll_and_after_an_outage() -> None:
    case = RuleCase(rule("high", "high_limit", "air", limit=8.0, delay_s=0,
                         suppress=[{"after": "device_online", "after_s": 900}]))
    case.rules.device_online(0, first_poll=True)
    assert case.feed(0, air=12.0) == []
    assert case.feed(899, air=12.0) == []
    assert case.codes(900, air=12.0) == [("high", "raised")]
    assert case.codes(1000, air=5.0) == [("high", "cleared")]
    case.rules.device_online(5000)  # back after an outage: power returned
    assert case.feed(5000, air=12.0) == [] and case.feed(5899, air=12.0) == []
    assert case.codes(5900, air=12.0) == [("high", "raised")]


def test_an_active_fault_still_clears_inside_the_online_window() -> None:
    case = RuleCase(rule("high", "high_limit", "air", limit=8.0, suppress=[{"after": "device_online", "after_s": 900}]))
    assert case.codes(0, air=12.0) == [("high", "raised")]
    case.rules.device_online(10)
    assert case.codes(20, air=4.0) == [("high", "cleared")]


def test_without_an_online_moment_nothing_is_suppressed() -> None:
    case = RuleCase(rule("high", "high_limit", "air", limit=8.0, suppress=[{"after": "device_online", "after_s": 900}]))
    assert case.codes(0, air=12.0) == [("high", "raised")]
