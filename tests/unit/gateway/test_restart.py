"""A restart of the store process resumes the open faults: the gateway hands the persisted open
faults to the edge, and a fault that recovered while the store was down is reported cleared.

No broker is running (the MQTT link stays down), so every event stays in the outbox.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

from device_profiles import ProfileRegistry
from edge.clock import Clock, FakeClock
from edge.config import EdgeConfig
from edge.model import EdgeSink, FaultChange
from edge.runtime import Edge
from gateway.config import StoreConfig
from gateway.edge_port import EdgeFactory
from gateway.runtime import StoreReady, run_store
from gateway.storage import StoreDatabase
from protocols.mqtt.messages import FaultEvent, FaultState
from tests.unit.edge.fakes import FakeBus, dixell, memory_factory
from tests.unit.gateway.fakes import FakeEdges, fault_change, store_config


@contextlib.asynccontextmanager
async def store_running(config: StoreConfig, edge_factory: EdgeFactory, clock: FakeClock) -> AsyncIterator[None]:
    ready = StoreReady()
    task = asyncio.create_task(run_store(config, ready=ready, edge_factory=edge_factory, clock=clock))
    try:
        await asyncio.wait_for(ready.wait(), 10)
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.wait_for(task, 10)


def stored(config: StoreConfig) -> tuple[list[FaultEvent], list[tuple[str, str]]]:
    """The fault events in the outbox, in order, and the open-fault table."""
    with StoreDatabase.open(config.outbox.path) as db:
        rows = db.execute("SELECT payload FROM outbox WHERE kind = 'fault' ORDER BY id").fetchall()
        open_faults = db.execute("SELECT device_id, fault_code FROM open_faults ORDER BY device_id").fetchall()
    return [FaultEvent.model_validate_json(payload) for (payload,) in rows], [tuple(r) for r in open_faults]


def summary(events: list[FaultEvent]) -> list[tuple[str, str, str]]:
    return [(e.device_id, e.fault_code, e.state.value) for e in events]


async def test_the_open_faults_are_handed_to_the_next_edge(tmp_path: Path) -> None:
    config, clock, edges = store_config(tmp_path), FakeClock(), FakeEdges()
    async with store_running(config, edges, clock):
        assert edges.last.restored_faults == []
        temperature = await edges.last.fault("case-01")
        await edges.last.fault("case-02", "device_offline", evidence={"failures": 3})
        await edges.last.fault("case-02", "device_offline", FaultState.CLEARED)
        offline = await edges.last.fault("case-02", "device_offline")
    async with store_running(config, edges, clock):
        assert edges.last.restored_faults == [temperature, offline]
        await edges.last.fault("case-01", state=FaultState.CLEARED)
    events, open_faults = stored(config)
    assert summary(events)[-1] == ("case-01", "high_temperature", "cleared")
    assert open_faults == [("case-02", "device_offline")]


def real_edges(bus: FakeBus) -> EdgeFactory:
    """The real Edge over the in-memory transport, one fake bus for every run."""

    def factory(config: EdgeConfig, registry: ProfileRegistry, sink: EdgeSink, clock: Clock,
                restored_faults: Sequence[FaultChange]) -> Edge:
        return Edge(config, registry, sink, clock, memory_factory({"cases": bus}, clock),
                    restored_faults=restored_faults)

    return factory


async def test_faults_that_recovered_while_the_store_was_down_are_cleared_after_the_restart(tmp_path: Path) -> None:
    config = store_config(tmp_path, buses=[{
        "name": "cases", "transport": "tcp", "host": "127.0.0.1", "tcp_port": 1502, "poll_interval_s": 5,
        "devices": [{"id": "case-01", "unit": 1, "profile": "dixell-xr75cx", "location": "aisle 3",
                     "rules": {"high_temperature": {"delay_s": 0}}},
                    {"id": "case-02", "unit": 2, "profile": "dixell-xr75cx", "location": "aisle 4"}],
    }])
    clock = FakeClock()
    warm, silent = dixell(clock, air=10.0), dixell(clock, air=4.0)
    silent.dead = True
    bus = FakeBus({1: warm, 2: silent})
    async with store_running(config, real_edges(bus), clock):
        await clock.run_for(60)  # case-01 too warm at once; case-02 offline after 3 failed polls
    events, open_faults = stored(config)
    assert summary(events) == [("case-01", "high_temperature", "raised"), ("case-02", "device_offline", "raised")]
    assert open_faults == [("case-01", "high_temperature"), ("case-02", "device_offline")]

    # While the store was down, the case cooled down and the controller answers again.
    warm.set_temp(256, 4.0)
    silent.dead = False
    clock.advance(3600)
    async with store_running(config, real_edges(bus), clock):
        await clock.run_for(10)  # M = 2 good polls for case-02
    events, open_faults = stored(config)
    assert summary(events) == [
        ("case-01", "high_temperature", "raised"),
        ("case-02", "device_offline", "raised"),
        ("case-01", "high_temperature", "cleared"),
        ("case-02", "device_offline", "cleared"),
    ]
    assert open_faults == []
    cleared = events[2]
    assert cleared.evidence["value"] == 4.0 and cleared.evidence["active_s"] == 3600 + 60
