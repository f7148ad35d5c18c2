"""FakeClock: time moves only by hand, and sleepers wake at their own deadlines."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

from edge.clock import FakeClock, SystemClock

START = datetime(2025, 3, 1, tzinfo=UTC)


def test_system_clock_is_aware_utc() -> None:
    clock = SystemClock()
    assert clock.now().tzinfo is UTC
    assert clock.monotonic() <= clock.monotonic()


def test_fake_clock_moves_only_when_advanced() -> None:
    clock = FakeClock(START)
    assert clock.now() == START and clock.monotonic() == 0.0
    clock.advance(90)
    assert clock.now() == START + timedelta(seconds=90) and clock.monotonic() == 90.0
    with pytest.raises(ValueError):
        clock.advance(-1)
    with pytest.raises(ValueError):
        FakeClock(datetime(2025, 1, 1))


async def test_sleepers_wake_when_their_deadline_passes() -> None:
    clock = FakeClock(START)
    woke: list[float] = []

    async def sleeper(seconds: float) -> None:
        await clock.sleep(seconds)
        woke.append(clock.monotonic())

    tasks = [asyncio.create_task(sleeper(s)) for s in (5, 1, 3)]
    await clock.settle()
    assert clock.sleepers == 3
    clock.advance(2)
    await clock.settle()
    assert woke == [2.0]
    await clock.run_for(10)
    assert woke == [2.0, 3.0, 5.0]  # each woke at its own deadline, in order
    await asyncio.gather(*tasks)


async def test_run_for_interleaves_periodic_tasks_at_their_own_times() -> None:
    clock = FakeClock(START)
    ticks: dict[str, list[float]] = {"a": [], "b": []}

    async def every(name: str, period: float) -> None:
        while True:
            ticks[name].append(clock.monotonic())
            await clock.sleep(period)

    tasks = [asyncio.create_task(every("a", 2)), asyncio.create_task(every("b", 3))]
    await clock.run_for(12)
    assert ticks["a"] == [0, 2, 4, 6, 8, 10, 12]
    assert ticks["b"] == [0, 3, 6, 9, 12]
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    assert clock.sleepers == 0
