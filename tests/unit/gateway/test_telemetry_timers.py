"""run_store's telemetry timers: one batch per bus per interval, each right after its bus's cycle."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

from edge.clock import FakeClock
from gateway.outbox import Outbox, OutboxKind
from gateway.runtime import StoreReady, run_store
from gateway.storage import StoreDatabase
from protocols.mqtt.messages import TelemetryBatch, parse_message
from tests.unit.gateway.fakes import FakeEdges, snapshot, store_config

BUSES = [
    {"name": "cases", "transport": "tcp", "host": "127.0.0.1", "tcp_port": 1502,
     "devices": [{"id": "case-01", "unit": 1, "profile": "dixell-xr75cx"},
                 {"id": "case-02", "unit": 2, "profile": "dixell-xr75cx"}]},
    {"name": "freezers", "transport": "tcp", "host": "127.0.0.1", "tcp_port": 1503,
     "devices": [{"id": "frz-01", "unit": 1, "profile": "dixell-xr75cx"}]},
]


def batches(path: Path, clock: FakeClock) -> list[list[str]]:
    """The device ids of each telemetry batch in the outbox, in order."""
    with StoreDatabase.open(path) as db:
        rows = Outbox(db, max_bytes=10_000_000, max_age_s=3600, clock=clock).pending(100)
    found = [parse_message(r.topic, r.payload) for r in rows if r.kind is OutboxKind.TELEMETRY]
    return [sorted({p.device_id for p in b.points}) for b in found if isinstance(b, TelemetryBatch)]


async def test_each_bus_s_batch_follows_its_own_fresh_cycle(tmp_path: Path) -> None:
    config = store_config(tmp_path, telemetry_interval_s=10, health_interval_s=3600, buses=BUSES)
    clock, edges, ready = FakeClock(), FakeEdges(), StoreReady()
    task = asyncio.create_task(run_store(config, ready=ready, edge_factory=edges, clock=clock))
    await asyncio.wait_for(ready.wait(), 10)
    try:
        edge = edges.last
        await asyncio.wait_for(edge.running.wait(), 5)
        for device_id in ("case-01", "case-02", "frz-01"):
            await edge.poll(snapshot(device_id))
        await clock.run_for(6)  # both windows opened at 5 s (one 5 s cycle before due)
        assert batches(config.outbox.path, clock) == []
        await edge.poll(snapshot("frz-01"))
        await clock.settle()
        assert batches(config.outbox.path, clock) == [["frz-01"]]  # not held up by the other bus
        await edge.poll(snapshot("case-01"))
        await clock.settle()
        assert batches(config.outbox.path, clock) == [["frz-01"]]  # case-02 not polled again yet
        await edge.poll(snapshot("case-02"))
        await clock.settle()
        assert batches(config.outbox.path, clock) == [["frz-01"], ["case-01", "case-02"]]
        await clock.run_for(9)  # nothing polls: each bus's batch at its deadline (6 + 12.5 s), once
        assert len(batches(config.outbox.path, clock)) == 2
        await clock.run_for(5)
        assert sorted(map(tuple, batches(config.outbox.path, clock)[2:])) == [("case-01", "case-02"), ("frz-01",)]
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.wait_for(task, 10)
