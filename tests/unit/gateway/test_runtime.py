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

            assert await by_kind() == {"fault": 0, "health": 0, "telemetry": 0}
            await clock.run_for(35)  # three telemetry cycles, no health cycle yet
            assert await by_kind() == {"fault": 0, "health": 0, "telemetry": 3}
            await clock.run_for(30)
            assert await by_kind() == {"fault": 0, "health": 1, "telemetry": 6}
            await edge.fault("case-01")
            assert (await by_kind())["fault"] == 1
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.wait_for(task, 10)
    assert edges.last.closed
    with StoreDatabase.open(config.outbox.path) as db:  # the file is closed and consistent
        (rows,) = db.execute("SELECT COUNT(*) FROM outbox").fetchone()
    assert rows == 8
