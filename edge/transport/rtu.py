"""RTU response framing over any byte stream (edge layer), shared by serial and RTU-over-TCP.

RTU frames carry no length, so the response is framed by the length its request implies
(``protocols.modbus.pdu.expected_response_length``; an exception response is 5 bytes).
Bytes that stop arriving mid-frame for longer than ``silence`` make a truncated frame.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from edge.errors import BadCrc, BadFrame, DeviceTimeout, LinkDown
from edge.transport.base import check_response
from protocols.modbus.errors import CrcError, FrameError
from protocols.modbus.pdu import expected_response_length
from protocols.modbus.rtu import decode_frame

# Wait at most the given seconds for more bytes; return them (b"" when the link closed),
# or raise TimeoutError when none came.
Receive = Callable[[float], Awaitable[bytes]]

EXCEPTION_FRAME_LENGTH = 5  # unit, function | 0x80, code, CRC (2)


def response_frame_length(request: bytes, head: bytes) -> int:
    """Total RTU frame length of the response whose first two bytes are ``head``."""
    if len(head) >= 2 and head[1] & 0x80:
        return EXCEPTION_FRAME_LENGTH
    return 1 + expected_response_length(request) + 2


async def receive_response(receive: Receive, unit: int, request: bytes, *, timeout: float, silence: float) -> bytes:
    """Read one RTU response to ``request`` from ``unit`` and return its checked PDU."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    buffer = bytearray()
    needed = response_frame_length(request, b"")
    while len(buffer) < needed:
        remaining = deadline - loop.time()
        if buffer:
            remaining = min(remaining, silence)
        if remaining <= 0:
            break
        try:
            chunk = await receive(remaining)
        except TimeoutError:
            break
        if not chunk:
            raise LinkDown("the link closed while waiting for a response")
        buffer += chunk
        needed = response_frame_length(request, bytes(buffer[:2]))
    if not buffer:
        raise DeviceTimeout(f"unit {unit} did not answer within {timeout:.3f} s")
    if len(buffer) < needed:
        raise BadFrame(f"truncated response from unit {unit}: {len(buffer)} of {needed} bytes")
    return parse_response(bytes(buffer[:needed]), unit, request)


def parse_response(frame: bytes, unit: int, request: bytes) -> bytes:
    """Check CRC, unit and function of a complete RTU response frame; return its PDU."""
    try:
        answered_by, pdu = decode_frame(frame)
    except CrcError as exc:
        raise BadCrc(f"response from unit {unit}: {exc}") from exc
    except FrameError as exc:
        raise BadFrame(f"response from unit {unit}: {exc}") from exc
    if answered_by != unit:
        raise BadFrame(f"response from unit {answered_by}, expected unit {unit}")
    return check_response(request, pdu)


class RxBuffer:
    """Bytes received from a line, fed by a callback (add_reader, Protocol.data_received)."""

    def __init__(self) -> None:
        self._data = bytearray()
        self._event = asyncio.Event()
        self.closed = False
        self.last_rx = 0.0  # loop time of the last byte received

    def feed(self, data: bytes) -> None:
        self._data += data
        self.last_rx = asyncio.get_running_loop().time()
        self._event.set()

    def close(self) -> None:
        self.closed = True
        self._event.set()

    def reset(self) -> None:
        self._data.clear()
        self.closed = False

    def drop(self) -> int:
        """Discard everything received so far (stale input); return how many bytes."""
        count = len(self._data)
        self._data.clear()
        return count

    async def receive(self, timeout: float) -> bytes:
        """A ``Receive``: wait up to ``timeout`` for bytes; b"" once the link closed."""
        if not self._data and not self.closed:
            self._event.clear()
            async with asyncio.timeout(timeout):  # not wait_for: on 3.11 it can swallow a cancellation
                await self._event.wait()
        data = bytes(self._data)
        self._data.clear()
        return data
