"""Rule state survives a restart: pending delays, not_seen last-seen times, creep means, rate
minima and suppression windows are exported as wall-clock stamps and resumed on a new
monotonic clock; invalid or foreign entries are skipped with a warning."""

from __future__ import annotations

import json
import logging
import random
from datetime import timedelta

import pytest

from edge.clock import FakeClock
from edge.config import BusConfig, DeviceConfig, EdgeConfig
from edge.runtime import Edge
from tests.unit.edge.fakes import REGISTRY, FakeBus, RecordingSink, dixell, memory_factory, running
from tests.unit.edge.rule_case import DAY, HOUR, RuleCase, rule, stale
from tests.unit.edge.test_rule_types import CREEP, MISSED, RATE, feed_for

HIGH = rule("high", "high_limit", "air", limit=8.0, delay_s=1800,
            suppress=[{"point": "defrost", "after_s": 1800}, {"after": "device_online", "after_s": 900}])


def restart(before: RuleCase, t: float, downtime: float = 0.0) -> RuleCase:
    """Export ``before``'s state at its time ``t`` (through JSON), and start a new run whose
    monotonic clock starts at 0, ``downtime`` seconds of wall clock later."""
    saved = json.loads(json.dumps(before.rules.export_state(t, before.at(t))))
    rules = [r.model_dump(mode="json") for r in before.profile.rules]
    after = RuleCase(*rules, offset=before.offset + t + downtime)
    after.rules.import_state(saved, 0.0, after.at(0.0))
    return after


def test_a_not_seen_timer_at_11_h_raises_1_h_after_the_restart() -> None:
    before = RuleCase(MISSED)
    before.feed(0, defrost=False)
    assert before.feed(11 * HOUR, defrost=False) == []
    after = restart(before, 11 * HOUR)
    assert after.feed(HOUR - 1, defrost=False) == []
    assert after.codes(HOUR, defrost=False) == [("defrost_missed", "raised")]


def test_the_downtime_counts_for_not_seen() -> None:
    before = RuleCase(MISSED)
    before.feed(0, defrost=False)
    after = restart(before, 11 * HOUR, downtime=2 * HOUR)
    assert after.feed(0, defrost=stale("defrost")) == []
    assert after.codes(60, defrost=False) == [("defrost_missed", "raised")]


def test_a_pending_delay_resumes() -> None:
    before = RuleCase(HIGH)
    before.feed(0, air=9.0)
    before.feed(1000, air=9.0)
    after = restart(before, 1000)
    assert after.rules.phases()["high"] == "pending"
    assert after.feed(799, air=9.0) == []
    (raised,) = after.feed(800, air=9.0)
    assert raised.evidence["beyond_s"] == 1800


def test_an_after_defrost_window_resumes() -> None:
    before = RuleCase(HIGH)
    before.feed(0, defrost=True, air=12.0)
    before.feed(600, defrost=False, air=12.0)  # window until 2400
    after = restart(before, 700)
    assert after.feed(0, defrost=False, air=12.0) == []
    assert after.rules.phases()["high"] == "normal"  # still inside the window (1700 s of it is left)
    after.feed(1700, defrost=False, air=12.0)
    assert after.rules.phases()["high"] == "pending"


def test_the_online_moment_resumes_and_a_restart_alone_opens_no_window() -> None:
    before = RuleCase(HIGH)
    before.rules.device_online(0, first_poll=True)
    before.feed(0, air=5.0)
    after = restart(before, 2 * HOUR)
    after.rules.device_online(0, first_poll=True)  # the edge restarted; the device answered all along
    after.feed(0, air=9.0)
    assert after.rules.phases()["high"] == "pending"
    after.rules.device_online(100)  # a real return after an outage still opens the window
    after.feed(100, air=9.0)
    assert after.rules.phases()["high"] == "normal"


def test_creep_means_resume_without_a_new_history() -> None:
    before = RuleCase(CREEP)
    feed_for(before, 0, 8 * DAY, air=3.0, defrost=False)
    after = restart(before, 8 * DAY)
    changes = feed_for(after, 0, DAY, air=5.0, defrost=False)
    assert [what for _, what in changes] == ["temperature_creep/raised"]
    assert changes[0][0] < 7 * HOUR  # the baseline survived: no 2-day history needed again


def test_rate_minima_resume() -> None:
    before = RuleCase(RATE)
    before.feed(0, air=3.0)
    after = restart(before, 100)
    assert after.codes(200, air=9.0) == [("rapid_rise", "raised")]  # 6 K since 300 s of wall clock ago


def test_invalid_and_foreign_entries_are_skipped_with_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    before = RuleCase(MISSED, HIGH)
    before.feed(0, defrost=False, air=9.0)
    saved = before.rules.export_state(600, before.at(600))
    rules = saved["rules"]
    assert isinstance(rules, dict)
    rules["gone"] = {"type": "flag", "point": "door"}
    rules["high"] = {"type": "high_limit", "point": "air", "pending_since": "yesterday"}
    rules["defrost_missed"] = {"type": "flag", "point": "defrost"}
    saved["switches"] = {"defrost": {"on": "maybe"}, "nope": {"on": True, "off_since": None}}
    after = RuleCase(MISSED, HIGH)
    with caplog.at_level(logging.WARNING, logger="edge.rules"):
        after.rules.import_state(saved, 0.0, after.at(0.0))
    (record,) = caplog.records
    for expected in ("'gone'", "'high'", "yesterday", "'defrost_missed'", "now not_seen", "'nope'", "maybe"):
        assert expected in record.getMessage()
    assert after.rules.phases() == {"defrost_missed": "normal", "high": "normal"}
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="edge.rules"):
        after.rules.import_state({"version": 1, "rules": [1, 2]}, 0.0, after.at(0.0))
        after.rules.import_state({"version": 99, "rules": {}}, 0.0, after.at(0.0))
    assert ["'rules' is not an object" in r.getMessage() for r in caplog.records] == [True, False]
    assert "version 99" in caplog.records[1].getMessage()


def test_export_is_json_and_names_each_rule() -> None:
    case = RuleCase(MISSED, CREEP, RATE, HIGH)
    case.rules.device_online(0, first_poll=True)
    case.feed(0, defrost=True, air=3.0)
    saved = case.rules.export_state(10, case.at(10))
    assert json.loads(json.dumps(saved)) == saved
    rules = saved["rules"]
    assert isinstance(rules, dict) and set(rules) == {"defrost_missed", "temperature_creep", "rapid_rise", "high"}
    assert rules["defrost_missed"]["memory"] == {"last_seen": case.at(0).isoformat()}
    assert saved["online_at"] == case.at(0).isoformat() and saved["saved_at"] == case.at(10).isoformat()


# --- through the Edge, on a FakeClock ----------------------------------------------------------


def make_edge(clock: FakeClock, sink: RecordingSink, restored: dict[str, dict[str, object]] | None = None) -> Edge:
    bus = BusConfig(
        name="cases", transport="tcp", host="10.0.0.9", tcp_port=502, poll_interval_s=600,
        devices=[DeviceConfig(id="case-1", unit=1, profile="dixell-xr75cx", location="aisle 3")],
    )
    fakes = memory_factory({"cases": FakeBus({1: dixell(clock, air=4.0)})}, clock)
    if restored is None:
        return Edge(EdgeConfig(buses=[bus]), REGISTRY, sink, clock, fakes, rng=random.Random(1))
    return Edge(EdgeConfig(buses=[bus]), REGISTRY, sink, clock, fakes, rng=random.Random(1),
                restored_rule_state=restored)


async def test_edge_restart_resumes_a_defrost_missed_timer() -> None:
    clock, sink = FakeClock(), RecordingSink()
    async with running(make_edge(clock, sink)) as edge:
        await clock.run_for(11 * HOUR)  # no defrost for 11 h
        saved = json.loads(json.dumps(edge.rule_state()))
    assert sink.codes() == []
    assert set(saved) == {"case-1"}
    clock2, sink2 = FakeClock(clock.now()), RecordingSink()  # a new process: monotonic starts again
    async with running(make_edge(clock2, sink2, saved)):
        await clock2.run_for(50 * 60)
        assert sink2.codes() == []
        await clock2.run_for(20 * 60)
    assert sink2.codes() == [("defrost_missed", "raised")]
    assert sink2.faults[0].occurred_at == clock.now() + timedelta(hours=1)  # 11 h + 1 h, not 11 h + 12 h


async def test_edge_ignores_rule_state_of_unknown_devices(caplog: pytest.LogCaptureFixture) -> None:
    clock, sink = FakeClock(), RecordingSink()
    with caplog.at_level(logging.WARNING, logger="edge.runtime"):
        edge = make_edge(clock, sink, {"case-9": {"rules": {}}})
    assert "case-9" in caplog.text
    assert set(edge.rule_state()) == {"case-1"}
