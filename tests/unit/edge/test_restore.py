"""Rule state survives a restart: the Edge resumes the faults still open downstream (as the
gateway persisted them) and clears them by the usual rules, on a FakeClock."""

from __future__ import annotations

import logging
import random
from dataclasses import replace
from datetime import timedelta

import pytest

from edge.clock import FakeClock
from edge.config import BusConfig, DeviceConfig, EdgeConfig, RuleOverride
from edge.model import FaultChange
from edge.runtime import Edge
from protocols.mqtt.messages import FaultClass, FaultState, Severity, TicketClass
from tests.unit.edge.fakes import REGISTRY, FakeBus, FakeDevice, RecordingSink, dixell, memory_factory, running


def raised(clock: FakeClock, code: str = "high_temperature", device_id: str = "case-1", *,
           hours_ago: float = 1.0) -> FaultChange:
    """A fault raised by the previous run, as the gateway hands it back."""
    return FaultChange(
        device_id=device_id, device_model="dixell-xr75cx", fault_code=code, state=FaultState.RAISED,
        severity=Severity.MAJOR, fault_class=FaultClass.FOOD_SAFETY, ticket_class=TicketClass.REPAIR,
        occurred_at=clock.now() - timedelta(hours=hours_ago), description="Cabinet air above the high limit",
        location="aisle 3", evidence={"value": 9.4, "limit": 8.0},
    )


def make_edge(clock: FakeClock, sink: RecordingSink, device: FakeDevice, restored: list[FaultChange],
              **rules: RuleOverride) -> Edge:
    bus = BusConfig(
        name="cases", transport="tcp", host="10.0.0.9", tcp_port=502, poll_interval_s=5,
        devices=[DeviceConfig(id="case-1", unit=1, profile="dixell-xr75cx", location="aisle 3", rules=rules)],
    )
    return Edge(EdgeConfig(buses=[bus]), REGISTRY, sink, clock, memory_factory({"cases": FakeBus({1: device})}, clock),
                rng=random.Random(1), restored_faults=restored)


async def test_restored_fault_clears_once_the_reading_is_back_for_the_clear_delay() -> None:
    clock, sink = FakeClock(), RecordingSink()
    fault = raised(clock)
    edge = make_edge(clock, sink, dixell(clock, air=4.0), [fault], high_temperature=RuleOverride(clear_delay_s=60))
    assert edge.active_faults() == [fault]  # resumed at construction, nothing emitted
    async with running(edge):
        await clock.run_for(55)
        assert sink.faults == []  # recovered, but not for clear_delay_s yet
        await clock.run_for(5)
        assert sink.codes() == [("high_temperature", "cleared")]
        await clock.run_for(60)
    assert sink.codes() == [("high_temperature", "cleared")]
    evidence = sink.faults[0].evidence
    assert evidence["value"] == 4.0 and evidence["recovered_s"] == 60
    assert evidence["active_s"] == 3600 + 60  # the fault's age spans the restart
    assert edge.active_faults() == []


async def test_restored_fault_that_is_still_high_or_in_the_hysteresis_band_stays_active() -> None:
    clock, sink = FakeClock(), RecordingSink()
    device = dixell(clock, air=10.0)
    fault = raised(clock)
    edge = make_edge(clock, sink, device, [fault])
    async with running(edge):
        await clock.run_for(2000)  # past the 1800 s raise delay: no second "raised"
        device.set_temp(256, 7.0)  # below the limit, above the clear level
        await clock.run_for(100)
        assert edge.active_faults() == [fault]
    assert sink.faults == []


async def test_restored_device_offline_needs_m_good_polls_and_stale_data_holds_the_rules() -> None:
    clock, sink = FakeClock(), RecordingSink()
    device = dixell(clock, air=4.0)
    device.dead = True
    restored = [raised(clock, "device_offline"), raised(clock)]
    edge = make_edge(clock, sink, device, restored)
    assert not edge.snapshots()[0].online
    async with running(edge):
        await clock.run_for(60)  # still dead: no second device_offline, the temperature is unknown
        assert sink.faults == []
        device.dead = False
        for _ in range(20):  # the dead device was probed with backoff: wait for the next probe
            await clock.run_for(5)
            if edge.metrics().devices[0].consecutive_successes:
                break
        assert edge.metrics().devices[0].consecutive_successes == 1
        assert sink.faults == [] and not edge.snapshots()[0].online  # one good poll is not enough (M = 2)
        await clock.run_for(5)
    assert sink.codes() == [("device_offline", "cleared"), ("high_temperature", "cleared")]
    offline_s = sink.faults[0].evidence["offline_s"]
    assert isinstance(offline_s, float) and offline_s > 3600
    assert edge.active_faults() == [] and edge.snapshots()[0].online


async def test_restored_faults_that_match_nothing_are_cleared_at_start_and_logged_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock, sink = FakeClock(), RecordingSink()
    removed_device = raised(clock, device_id="case-9")
    disabled_rule = raised(clock, "low_temperature")
    renamed_rule = raised(clock, "air_too_warm")
    not_open = replace(raised(clock, "door_open"), state=FaultState.CLEARED)  # ignored: nothing to resume
    restored = [removed_device, disabled_rule, renamed_rule, not_open]
    with caplog.at_level(logging.WARNING, logger="edge.runtime"):
        edge = make_edge(clock, sink, dixell(clock, air=4.0), restored, low_temperature=RuleOverride(enabled=False))
    assert len(caplog.records) == 1 and "case-9/high_temperature (device_removed)" in caplog.text
    assert edge.active_faults() == []
    async with running(edge):
        await clock.settle()
    assert [(f.device_id, f.fault_code, f.state.value) for f in sink.faults] == [
        ("case-9", "high_temperature", "cleared"),
        ("case-1", "low_temperature", "cleared"),
        ("case-1", "air_too_warm", "cleared"),
    ]
    first = sink.faults[0]
    assert first.occurred_at == clock.now() and first.severity is Severity.MAJOR and first.location == "aisle 3"
    assert first.evidence == {"reason": "device_removed", "detail": "device 'case-9' is no longer configured",
                              "raised_at": removed_device.occurred_at.isoformat()}
    assert sink.faults[1].evidence["reason"] == "rule_removed"
