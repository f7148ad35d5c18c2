"""In-memory transport (edge layer): requests answered by a function in the same process.

For tests and demos without sockets. The handler gets ``(unit, pdu)`` and returns the
response PDU, or ``None`` for silence (a dead device: the request times out on the clock).
It may raise a ``TransportError`` to inject a line fault (BadCrc, BadFrame, LinkDown).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from edge.clock import Clock
from edge.errors import DeviceTimeout, LinkDown
from edge.transport.base import check_response

Handler = Callable[[int, bytes], bytes | None]


class InMemoryTransport:
    def __init__(self, handler: Handler, clock: Clock, *, latency: float = 0.0, name: str = "memory") -> None:
        self._handler = handler
        self._clock = clock
        self._latency = latency
        self._name = name
        self._lock = asyncio.Lock()
        self.is_open = False
        self.sent: list[tuple[int, bytes]] = []  # every request, in order (for tests)

    @property
    def name(self) -> str:
        return self._name

    async def open(self) -> None:
        self.is_open = True

    async def close(self) -> None:
        self.is_open = False

    async def request(self, unit: int, pdu: bytes, timeout: float) -> bytes:
        async with self._lock:
            if not self.is_open:
                raise LinkDown(f"{self._name} is not open")
            self.sent.append((unit, pdu))
            response = self._handler(unit, pdu)
            if response is None:
                await self._clock.sleep(timeout)
                raise DeviceTimeout(f"unit {unit} did not answer within {timeout:.3f} s")
            if self._latency:
                await self._clock.sleep(min(self._latency, timeout))
                if self._latency > timeout:
                    raise DeviceTimeout(f"unit {unit} did not answer within {timeout:.3f} s")
            return check_response(pdu, response)
