"""Time for the edge (edge layer): wall clock, monotonic clock and sleeping, injectable.

Rules, backoff and poll scheduling read time only through a ``Clock`` so tests drive them
with ``FakeClock`` instead of sleeping. Transports time their own wire I/O with the event
loop, because that is physical time on a real port.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import time
from datetime import UTC, datetime, timedelta
from typing import Protocol


class Clock(Protocol):
    def now(self) -> datetime:
        """The current time as an aware UTC datetime (for timestamps)."""
        ...

    def monotonic(self) -> float:
        """Seconds on a clock that never goes back (for durations and schedules)."""
        ...

    async def sleep(self, seconds: float) -> None:
        """Suspend the calling task for ``seconds`` of this clock's time."""
        ...


class SystemClock:
    """The real clocks of the machine."""

    def now(self) -> datetime:
        return datetime.now(UTC)

    def monotonic(self) -> float:
        return time.monotonic()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds))


_DEFAULT_START = datetime(2025, 1, 1, tzinfo=UTC)


class FakeClock:
    """A clock that moves only when a test advances it.

    ``advance()`` moves time at once and wakes every sleeper that is due. ``run_for()``
    moves time in steps from one sleeper's deadline to the next, letting the event loop run
    the woken tasks between steps, so concurrent tasks see the time they would have seen.
    """

    def __init__(self, start: datetime = _DEFAULT_START, *, settle_steps: int = 50) -> None:
        if start.tzinfo is None:
            raise ValueError("FakeClock needs an aware start time")
        self._start = start.astimezone(UTC)
        self._elapsed = 0.0
        self._settle_steps = settle_steps
        self._sleepers: list[tuple[float, int, asyncio.Future[None]]] = []
        self._seq = itertools.count()

    def now(self) -> datetime:
        return self._start + timedelta(seconds=self._elapsed)

    def monotonic(self) -> float:
        return self._elapsed

    async def sleep(self, seconds: float) -> None:
        if seconds <= 0:
            await asyncio.sleep(0)
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._sleepers, (self._elapsed + seconds, next(self._seq), future))
        await future

    def advance(self, seconds: float) -> None:
        """Move time forward by ``seconds`` and wake every sleeper that is due."""
        if seconds < 0:
            raise ValueError("time does not go back")
        self._elapsed += seconds
        self._wake_due()

    async def run_for(self, seconds: float) -> None:
        """Advance ``seconds`` deadline by deadline, running woken tasks at each step."""
        if seconds < 0:
            raise ValueError("time does not go back")
        target = self._elapsed + seconds
        await self.settle()
        while True:
            deadline = self._next_deadline()
            if deadline is None or deadline > target:
                break
            self._elapsed = max(self._elapsed, deadline)
            self._wake_due()
            await self.settle()
        self._elapsed = target
        await self.settle()

    async def settle(self) -> None:
        """Let ready tasks run until they block again (in-process fakes never block on I/O)."""
        for _ in range(self._settle_steps):
            await asyncio.sleep(0)

    @property
    def sleepers(self) -> int:
        return sum(1 for _, _, future in self._sleepers if not future.done())

    def _next_deadline(self) -> float | None:
        while self._sleepers and self._sleepers[0][2].done():
            heapq.heappop(self._sleepers)  # cancelled sleepers
        return self._sleepers[0][0] if self._sleepers else None

    def _wake_due(self) -> None:
        while self._sleepers and self._sleepers[0][0] <= self._elapsed:
            _, _, future = heapq.heappop(self._sleepers)
            if not future.done():
                future.set_result(None)
