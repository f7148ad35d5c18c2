"""Byte transports for serial peripherals (edge layer): one request out, one reply back.

Unlike Modbus, an ESC/POS or ccTalk reply has no common framing, so the caller says where
the reply ends: ``reply_length(buffer)`` returns the bytes of the complete reply at
buffer[0], or None while more are needed. A transport raises only ``TransportError``s:
``DeviceTimeout`` (nothing came back), ``BadFrame`` (a partial reply when time ran out),
``LinkDown`` (port unusable). ``InMemoryByteTransport`` answers from a function, on a clock.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Protocol

from edge.clock import Clock
from edge.errors import BadCrc, BadFrame, DeviceException, DeviceTimeout, LinkDown, TransportError
from edge.metrics import RequestCounters
from edge.peripherals.errors import Nak

ReplyLength = Callable[[bytes], int | None]
# What the far end of the line sends back for a request (echo included), None for silence.
ByteHandler = Callable[[bytes], bytes | None]


class ByteTransport(Protocol):
    @property
    def name(self) -> str: ...

    async def open(self) -> None:
        """Open the port if possible; a port that cannot be opened yet is retried by ``exchange``."""
        ...

    async def close(self) -> None: ...

    async def exchange(self, request: bytes, reply_length: ReplyLength, timeout: float) -> bytes:
        """Send ``request``; return exactly the reply ``reply_length`` delimits."""
        ...


def complete_reply(buffer: bytes, reply_length: ReplyLength) -> int | None:
    """The length of the complete reply in ``buffer``, or None while it is incomplete."""
    if not buffer:
        return None
    n = reply_length(buffer)
    return n if n is not None and 0 < n <= len(buffer) else None


def timed_out(received: bytes, timeout: float, request: bytes = b"") -> TransportError:
    """The error for a reply that did not complete within ``timeout`` (only the line's echo of
    the request coming back is silence too)."""
    if received == request[: len(received)] and len(received) == len(request):
        return DeviceTimeout(f"no reply within {timeout:.3f} s (only the echo of the request)")
    if received:
        return BadFrame(f"truncated reply: {len(received)} bytes ({received.hex(' ')}) in {timeout:.3f} s")
    return DeviceTimeout(f"no reply within {timeout:.3f} s")


class InMemoryByteTransport:
    """For tests: ``handler(request)`` plays the line; a silent or short answer costs the timeout."""

    def __init__(self, handler: ByteHandler, clock: Clock, *, name: str = "memory") -> None:
        self._handler = handler
        self._clock = clock
        self._name = name
        self._lock = asyncio.Lock()
        self.is_open = False
        self.sent: list[bytes] = []

    @property
    def name(self) -> str:
        return self._name

    async def open(self) -> None:
        self.is_open = True

    async def close(self) -> None:
        self.is_open = False

    async def exchange(self, request: bytes, reply_length: ReplyLength, timeout: float) -> bytes:
        async with self._lock:
            if not self.is_open:
                raise LinkDown(f"{self._name} is not open")
            self.sent.append(request)
            answer = self._handler(request) or b""
            n = complete_reply(answer, reply_length)
            if n is None:
                await self._clock.sleep(timeout)
                raise timed_out(answer, timeout, request)
            return answer[:n]


async def counted_exchange(
    transport: ByteTransport,
    request: bytes,
    reply_length: ReplyLength,
    timeout: float,
    counters: tuple[RequestCounters, ...],
) -> bytes:
    """``transport.exchange`` with every request and failed request counted (device and bus)."""
    _count(counters, "requests")
    try:
        reply = await transport.exchange(request, reply_length, timeout)
    except TransportError as exc:
        _count(counters, counter_name(exc))
        raise
    _count(counters, "responses")
    return reply


def count_failure(counters: tuple[RequestCounters, ...], exc: TransportError) -> None:
    """Count a reply the transport delivered but the codec refused (checksum, NAK, bad bytes)."""
    _count(counters, "responses", -1)
    _count(counters, counter_name(exc))


def counter_name(exc: TransportError) -> str:
    for kind, name in (
        (DeviceTimeout, "timeouts"),
        (BadCrc, "crc_errors"),
        (BadFrame, "bad_frames"),
        (DeviceException, "exceptions"),
        (Nak, "exceptions"),
        (LinkDown, "link_errors"),
    ):
        if isinstance(exc, kind):
            return name
    return "bad_frames"


def _count(counters: tuple[RequestCounters, ...], name: str, step: int = 1) -> None:
    for c in counters:
        setattr(c, name, getattr(c, name) + step)
