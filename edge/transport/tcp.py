"""Modbus over TCP (edge layer): Modbus TCP with MBAP headers, and RTU frames over a TCP socket.

Both connect lazily and reconnect after a failure, no more often than a growing delay, so a
dead endpoint costs a fast ``LinkDown`` per request rather than a connect timeout each time.
Modbus TCP matches answers by transaction id: a late answer to a timed-out request is
skipped, not taken for the current one.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging

from edge.errors import BadFrame, DeviceTimeout, LinkDown
from edge.logs import FailureLog
from edge.transport.base import check_response
from edge.transport.rtu import RxBuffer, receive_response
from protocols.modbus import tcp as mbap
from protocols.modbus.errors import FrameError
from protocols.modbus.rtu import encode_frame

logger = logging.getLogger(__name__)


class _Reconnect:
    """When the next connection attempt is allowed: the delay doubles per failure, up to a cap."""

    def __init__(self, first: float, cap: float) -> None:
        self._first = first
        self._cap = cap
        self._delay = 0.0
        self._not_before = 0.0

    def check(self, name: str) -> None:
        now = asyncio.get_running_loop().time()
        if now < self._not_before:
            raise LinkDown(f"{name} is down (next connection attempt in {self._not_before - now:.1f} s)")

    def failed(self) -> None:
        self._delay = min(self._cap, self._delay * 2) if self._delay else self._first
        self._not_before = asyncio.get_running_loop().time() + self._delay

    def succeeded(self) -> None:
        self._delay = 0.0
        self._not_before = 0.0


class _TcpBase:
    def __init__(self, host: str, port: int, *, connect_timeout: float, reconnect_delay: float, reconnect_max: float):
        self._host = host
        self._port = port
        self._connect_timeout = connect_timeout
        self._reconnect = _Reconnect(reconnect_delay, reconnect_max)
        self._lock = asyncio.Lock()
        self._link_log = FailureLog(logger, self.name)

    @property
    def name(self) -> str:
        return f"{self._host}:{self._port}"

    async def open(self) -> None:
        async with self._lock:
            with contextlib.suppress(LinkDown):  # logged; request() tries again after the reconnect delay
                await self._connect()

    async def close(self) -> None:
        async with self._lock:
            self._disconnect()

    async def _connect(self) -> None:
        try:
            async with asyncio.timeout(self._connect_timeout):
                await self._open_connection()
        except (OSError, TimeoutError) as exc:
            self._reconnect.failed()
            reason = "timed out" if isinstance(exc, TimeoutError) else str(exc)
            self._link_log.failed(f"cannot connect: {reason}")
            raise LinkDown(f"cannot connect to {self.name}: {reason}") from exc
        self._reconnect.succeeded()
        self._link_log.ok()

    def _lost(self, reason: str) -> LinkDown:
        """Drop the connection after a failure; the caller raises the result ``from`` the cause."""
        self._disconnect()
        self._reconnect.failed()
        self._link_log.failed(reason)
        return LinkDown(f"{self.name}: {reason}")

    async def _open_connection(self) -> None:
        raise NotImplementedError

    def _disconnect(self) -> None:
        raise NotImplementedError


class _MbapProtocol(asyncio.Protocol):
    """Splits the byte stream into MBAP frames and hands the awaited one to its request.

    One receive path: frames are cut from one buffer as bytes arrive, with no stream reader,
    task or per-read timeout in between. A frame that answers anything else (an earlier,
    timed-out request) is counted and skipped."""

    def __init__(self, owner: TcpTransport) -> None:
        self._owner = owner
        self._buffer = bytearray()
        self._waiter: asyncio.Future[tuple[int, bytes]] | None = None
        self._expected = -1
        self.transport: asyncio.Transport | None = None
        self.closed = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def expect(self, transaction_id: int, waiter: asyncio.Future[tuple[int, bytes]] | None) -> None:
        self._expected, self._waiter = transaction_id, waiter

    def mid_frame(self) -> bool:
        """A header has arrived but not all of its frame."""
        return len(self._buffer) >= mbap.MBAP_LENGTH

    def data_received(self, data: bytes) -> None:
        buffer = self._buffer
        if not buffer and len(data) >= mbap.MBAP_LENGTH:  # the usual case: one whole answer, parsed in place
            answered_id, protocol_id, length, unit = mbap.HEADER.unpack_from(data)
            if protocol_id == 0 and 2 <= length <= 254 and len(data) == mbap.MBAP_LENGTH + length - 1:
                self._deliver(answered_id, unit, data[mbap.MBAP_LENGTH :])
                return
        buffer += data
        while len(buffer) >= mbap.MBAP_LENGTH:
            try:
                answered_id, unit, length = mbap.decode_header(bytes(buffer[: mbap.MBAP_LENGTH]))
            except FrameError as exc:
                self._fail(exc)
                return
            end = mbap.MBAP_LENGTH + length
            if len(buffer) < end:
                return
            body = bytes(buffer[mbap.MBAP_LENGTH : end])
            del buffer[:end]
            self._deliver(answered_id, unit, body)

    def _deliver(self, answered_id: int, unit: int, body: bytes) -> None:
        waiter = self._waiter
        if answered_id == self._expected and waiter is not None and not waiter.done():
            waiter.set_result((unit, body))
        else:
            self._owner.stale_responses += 1

    def eof_received(self) -> bool:
        self._fail(asyncio.IncompleteReadError(bytes(self._buffer), None))
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self._fail(exc if isinstance(exc, OSError) else asyncio.IncompleteReadError(bytes(self._buffer), None))

    def _fail(self, exc: Exception) -> None:
        """The stream is unusable: fail the waiting request, if any; the transport reconnects."""
        self.closed = True
        self._buffer.clear()
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_exception(exc)
        if self.transport is not None and isinstance(exc, FrameError):
            self.transport.close()


def _time_out(waiter: asyncio.Future[tuple[int, bytes]]) -> None:
    if not waiter.done():
        waiter.set_exception(TimeoutError())


class TcpTransport(_TcpBase):
    """Modbus TCP: MBAP framing over an asyncio protocol (one buffer, one future per request)."""

    def __init__(
        self,
        host: str,
        port: int,
        *,
        connect_timeout: float = 2.0,
        reconnect_delay: float = 0.5,
        reconnect_max: float = 30.0,
    ) -> None:
        super().__init__(
            host, port, connect_timeout=connect_timeout, reconnect_delay=reconnect_delay, reconnect_max=reconnect_max
        )
        self._protocol: _MbapProtocol | None = None
        self._transaction_ids = itertools.cycle(range(1, 0x10000))
        self.stale_responses = 0  # answers to earlier, timed-out requests that were skipped

    async def _open_connection(self) -> None:
        loop = asyncio.get_running_loop()
        _, protocol = await loop.create_connection(lambda: _MbapProtocol(self), self._host, self._port)
        self._protocol = protocol

    def _disconnect(self) -> None:
        protocol, self._protocol = self._protocol, None
        if protocol is not None and protocol.transport is not None:
            protocol.transport.close()

    async def request(self, unit: int, pdu: bytes, timeout: float) -> bytes:
        async with self._lock:
            if self._protocol is None or self._protocol.closed:
                self._disconnect()
                self._reconnect.check(self.name)
                await self._connect()
            protocol = self._protocol
            assert protocol is not None and protocol.transport is not None
            transaction_id = next(self._transaction_ids)
            loop = asyncio.get_running_loop()
            waiter: asyncio.Future[tuple[int, bytes]] = loop.create_future()
            protocol.expect(transaction_id, waiter)
            timer = loop.call_later(timeout, _time_out, waiter)
            try:
                protocol.transport.write(mbap.encode_frame(transaction_id, unit, pdu))
                answered_by, body = await waiter
            except TimeoutError as exc:
                if protocol.mid_frame():  # the stream is out of step: start over on a fresh connection
                    self._disconnect()
                    raise BadFrame(f"truncated response from unit {unit} at {self.name}") from exc
                raise DeviceTimeout(f"unit {unit} at {self.name} did not answer within {timeout:.3f} s") from exc
            except asyncio.IncompleteReadError as exc:
                raise self._lost("connection closed by the peer") from exc
            except OSError as exc:
                raise self._lost(f"connection failed: {exc}") from exc
            except FrameError as exc:
                self._disconnect()
                raise BadFrame(f"bad MBAP header from {self.name}: {exc}") from exc
            finally:
                timer.cancel()
                protocol.expect(-1, None)
            if answered_by != unit:
                raise BadFrame(f"response from unit {answered_by}, expected unit {unit}")
            return check_response(pdu, body)


class _RxProtocol(asyncio.Protocol):
    def __init__(self, buffer: RxBuffer) -> None:
        self._buffer = buffer

    def data_received(self, data: bytes) -> None:
        self._buffer.feed(data)

    def eof_received(self) -> bool:
        self._buffer.close()
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self._buffer.close()


class RtuOverTcpTransport(_TcpBase):
    """RTU frames (unit + PDU + CRC) over a TCP socket, as serial device servers relay them."""

    def __init__(
        self,
        host: str,
        port: int,
        *,
        inter_frame_gaps: dict[int, float] | None = None,
        connect_timeout: float = 2.0,
        reconnect_delay: float = 0.5,
        reconnect_max: float = 30.0,
        silence: float = 0.2,
    ) -> None:
        super().__init__(
            host, port, connect_timeout=connect_timeout, reconnect_delay=reconnect_delay, reconnect_max=reconnect_max
        )
        self._gaps = dict(inter_frame_gaps or {})
        self._silence = silence
        self._rx = RxBuffer()
        self._transport: asyncio.Transport | None = None
        self._last_done = 0.0
        self.stale_bytes = 0

    async def _open_connection(self) -> None:
        self._rx.reset()
        loop = asyncio.get_running_loop()
        transport, _ = await loop.create_connection(lambda: _RxProtocol(self._rx), self._host, self._port)
        self._transport = transport

    def _disconnect(self) -> None:
        transport, self._transport = self._transport, None
        if transport is not None:
            transport.close()

    async def request(self, unit: int, pdu: bytes, timeout: float) -> bytes:
        async with self._lock:
            if self._transport is None or self._rx.closed:
                self._disconnect()
                self._reconnect.check(self.name)
                await self._connect()
            assert self._transport is not None
            loop = asyncio.get_running_loop()
            gap = self._gaps.get(unit, 0.0)
            if (wait := self._last_done + gap - loop.time()) > 0:
                await asyncio.sleep(wait)
            self.stale_bytes += self._rx.drop()
            self._transport.write(encode_frame(unit, pdu))
            try:
                return await receive_response(self._rx.receive, unit, pdu, timeout=timeout, silence=self._silence)
            except LinkDown as exc:
                raise self._lost("connection closed by the peer") from exc
            finally:
                self._last_done = loop.time()
