"""run_store with a fake edge and a fake clock: timers fire on the clock, shutdown closes everything.

No broker is running (the MQTT link stays down), so everything stays in the outbox.
"""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

import aiohttp

from edge.clock import FakeClock
from gateway.runtime import StoreReady, run_store
from gateway.storage import StoreDatabase
from tests.unit.gateway.fakes import FakeEdges, snapshot, store_config


async def test_timers_run_on_the_injected_clock_and_shutdown_is_clean(tmp_path: Path) -> None:
    config = store_config(tmp_path, telemetry_interval_s=10, health_interval_s=60)
    clock, edges, ready = FakeClock(), FakeEdges(), StoreReady()
    task = asyncio.create_task(run_store(config, ready=ready, edge_factory=edges, clock=clock))
    await asyncio.wait_for(ready.wait(), 10)
    try:
        edge = edges.last
        await asyncio.wait_for(edge.running.wait(), 5)
        assert edge.config == config.edge_config
        await edge.poll(snapshot("case-01"))
        async with aiohttp.ClientSession() as http:
            async def by_kind() -> dict[str, int]:
                async with http.get(ready.url + "/api/state") as r:
                    state = await r.json()
                    assert state["mqtt"]["connected"] is False
                    return dict(state["outbox"]["by_kind"])

            # the health sent once the devices are known (a newer one supersedes it, retained)
            assert await by_kind() == {"fault": 0, "config_ack": 0, "health": 1, "telemetry": 0}
            # No fresh polls after the first: each batch waits for a complete poll cycle (5 s
            # buses) until half a cycle past due, so batches go out at 12.5 s, 25 s, 37.5 s, ...
            await clock.run_for(35)
            assert await by_kind() == {"fault": 0, "config_ack": 0, "health": 1, "telemetry": 2}
            await clock.run_for(30)
            assert await by_kind() == {"fault": 0, "config_ack": 0, "health": 1, "telemetry": 5}
            await edge.fault("case-01")
            assert (await by_kind())["fault"] == 1
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.wait_for(task, 10)
    assert edges.last.closed
    with StoreDatabase.open(config.outbox.path) as db:  # the file is closed and consistent
        (rows,) = db.execute("SELECT COUNT(*) FROM outbox").fetchone()
    assert rows == 7  # 5 telemetry + 1 health + 1 fault


async def test_a_telemetry_batch_follows_a_complete_poll_cycle(tmp_path: Path) -> None:
    """The batch is built right after every live device was polled again, not on a free timer."""
    config = store_config(tmp_path, telemetry_interval_s=10, health_interval_s=3600)
    clock, edges, ready = FakeClock(), FakeEdges(), StoreReady()
    task = asyncio.create_task(run_store(config, ready=ready, edge_factory=edges, clock=clock))
    await asyncio.wait_for(ready.wait(), 10)
    try:
        edge = edges.last
        await asyncio.wait_for(edge.running.wait(), 5)
        await edge.poll(snapshot("case-01"))
        await edge.poll(snapshot("case-02"))
        async with aiohttp.ClientSession() as http:
            async def telemetry() -> int:
                async with http.get(ready.url + "/api/state") as r:
                    return int((await r.json())["outbox"]["by_kind"]["telemetry"])

            await clock.run_for(6)  # the window for fresh readings opened at 5 s (one 5 s cycle early)
            assert await telemetry() == 0
            await edge.poll(snapshot("case-01"))
            await clock.settle()
            assert await telemetry() == 0  # case-02 not polled again yet
            await edge.poll(snapshot("case-02", online=False))  # offline devices are not waited for
            await clock.settle()
            assert await telemetry() == 1  # at 6 s, right after the cycle, not at 10 s
            await clock.run_for(8)  # next window opens at 11 s; nothing polls: out at 6 + 12.5 s
            assert await telemetry() == 1
            await clock.run_for(5)
            assert await telemetry() == 2
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.wait_for(task, 10)
