"""Backoff on a full bus: when cycles overrun the poll interval, a dead device backs off in
whole cycles (skip 1, 2, 4... cycles) instead of waits shorter than a cycle that skip none."""

from __future__ import annotations

import itertools
import random

from edge.clock import FakeClock
from edge.config import BusConfig, DeviceConfig, EdgeConfig
from edge.runtime import Edge
from edge.scheduler import SchedulerSettings
from tests.unit.edge.fakes import REGISTRY, FakeBus, FakeDevice, RecordingSink, dixell, memory_factory, running


async def probe_times(per_cycle: bool) -> tuple[list[float], float]:
    clock, sink = FakeClock(), RecordingSink()
    dead = FakeDevice(clock)
    dead.dead = True
    devices = [DeviceConfig(id=f"case-{u}", unit=u, profile="dixell-xr75cx") for u in (1, 2)]
    bus = BusConfig(name="line-1", transport="rtu", port="/dev/ttyFAKE0", poll_interval_s=0.5, timeout_ms=1000,
                    devices=devices)
    edge = Edge(EdgeConfig(buses=[bus]), REGISTRY, sink, clock,
                memory_factory({"line-1": FakeBus({1: dixell(clock), 2: dead})}, clock, latency=0.5),
                scheduler_settings=SchedulerSettings(backoff_per_cycle=per_cycle), rng=random.Random(2))
    async with running(edge):
        await clock.run_for(120)
        cycle = edge.metrics().buses[0].last_cycle_s
    assert cycle is not None
    return sorted({t for t, _ in dead.requests}), cycle


async def test_a_dead_device_on_an_overrunning_bus_backs_off_in_whole_cycles() -> None:
    per_cycle, cycle = await probe_times(per_cycle=True)
    per_interval, _ = await probe_times(per_cycle=False)
    assert cycle > 2.0  # 7 reads x 0.5 s: every cycle overruns the 0.5 s interval
    gaps = [b - a for a, b in itertools.pairwise(per_cycle)]
    assert all(gap >= 0.8 * 2 * cycle for gap in gaps[2:])  # from the 3rd failure on: 2, 4, 8... cycles
    assert len(per_cycle) < len(per_interval)
