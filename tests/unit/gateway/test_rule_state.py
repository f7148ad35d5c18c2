"""The store keeps the edge's rule state (timers, baselines) in its database: saved every minute
and at shutdown, handed to the next edge at start, so a restart does not restart the timers."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from datetime import timedelta
from pathlib import Path

import pytest

from device_profiles import ProfileRegistry
from edge.clock import Clock, FakeClock
from edge.config import EdgeConfig
from edge.model import EdgeSink, FaultChange
from edge.runtime import Edge
from gateway.config import StoreConfig
from gateway.edge_port import EdgeFactory, EdgeRunner, build_edge
from gateway.rule_state import RuleStateStore
from gateway.storage import StoreDatabase
from tests.unit.edge.fakes import FakeBus, dixell, memory_factory
from tests.unit.gateway.fakes import FakeEdges, store_config
from tests.unit.gateway.test_restart import store_running, stored, summary

HOUR = 3600.0


def real_edges(bus: FakeBus) -> EdgeFactory:
    def factory(config: EdgeConfig, registry: ProfileRegistry, sink: EdgeSink, clock: Clock,
                restored_faults: Sequence[FaultChange],
                restored_rule_state: Mapping[str, Mapping[str, object]] | None = None) -> Edge:
        return Edge(config, registry, sink, clock, memory_factory({"cases": bus}, clock),
                    restored_faults=restored_faults, restored_rule_state=restored_rule_state)

    return factory


def config_for(tmp_path: Path) -> StoreConfig:
    return store_config(tmp_path, buses=[{
        "name": "cases", "transport": "tcp", "host": "127.0.0.1", "tcp_port": 1502, "poll_interval_s": 600,
        "devices": [{"id": "case-01", "unit": 1, "profile": "dixell-xr75cx", "location": "aisle 3"}],
    }])


async def test_a_defrost_missed_timer_survives_a_store_restart(tmp_path: Path) -> None:
    config, clock = config_for(tmp_path), FakeClock()
    bus = FakeBus({1: dixell(clock, air=4.0)})  # never defrosts
    async with store_running(config, real_edges(bus), clock):
        await clock.run_for(11 * HOUR)
    with StoreDatabase.open(config.outbox.path) as db:
        saved = RuleStateStore(db, clock).load()
    assert set(saved) == {"case-01"}
    stopped_at = clock.now()
    assert summary(stored(config)[0]) == []
    async with store_running(config, real_edges(bus), clock):
        await clock.run_for(HOUR + 60)
    events, _ = stored(config)
    assert summary(events) == [("case-01", "defrost_missed", "raised")]
    assert events[0].occurred_at - stopped_at <= timedelta(hours=1, minutes=10)  # not 12 h after the restart


async def test_a_five_argument_factory_still_works_and_nothing_is_saved_for_it(tmp_path: Path) -> None:
    config, clock, edges = store_config(tmp_path), FakeClock(), FakeEdges()
    async with store_running(config, edges, clock):
        await clock.run_for(120)
    with StoreDatabase.open(config.outbox.path) as db:
        assert RuleStateStore(db, clock).load() == {}


def test_build_edge_passes_the_rule_state_only_to_factories_that_take_it() -> None:
    seen: list[object] = []

    def old(*args: object) -> EdgeRunner:
        seen.append(len(args))
        return None  # type: ignore[return-value]

    def new(*args: object, restored_rule_state: object = None) -> EdgeRunner:
        seen.append(restored_rule_state)
        return None  # type: ignore[return-value]

    state: dict[str, object] = {"case-01": {"rules": {}}}
    build_edge(old, None, None, None, None, [], state)  # type: ignore[arg-type]
    build_edge(new, None, None, None, None, [], state)  # type: ignore[arg-type]
    assert seen == [5, state]


def test_the_store_replaces_and_loads_documents(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    clock = FakeClock()
    with StoreDatabase.open(tmp_path / "s.db") as db:
        store = RuleStateStore(db, clock)
        store.save({"a": {"rules": {"x": {}}}, "b": {"rules": {}}})
        store.save({"a": {"rules": {}}})
        assert store.load() == {"a": {"rules": {}}}
        db.execute("INSERT INTO rule_state (device_id, state, saved_at) VALUES ('c', '{not json', 0)")
        with caplog.at_level(logging.WARNING, logger="gateway.rule_state"):
            assert store.load() == {"a": {"rules": {}}}
    assert "device c does not parse" in caplog.text
