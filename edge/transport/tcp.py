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


class TcpTransport(_TcpBase):
    """Modbus TCP: MBAP framing over asyncio streams."""

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
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._transaction_ids = itertools.cycle(range(1, 0x10000))
        self.stale_responses = 0  # answers to earlier, timed-out requests that were skipped

    async def _open_connection(self) -> None:
        self._reader, self._writer = await asyncio.open_connection(self._host, self._port)

    def _disconnect(self) -> None:
        writer, self._reader, self._writer = self._writer, None, None
        if writer is not None:
            writer.close()

    async def request(self, unit: int, pdu: bytes, timeout: float) -> bytes:
        async with self._lock:
            if self._writer is None:
                self._reconnect.check(self.name)
                await self._connect()
            assert self._reader is not None and self._writer is not None
            transaction_id = next(self._transaction_ids)
            loop = asyncio.get_running_loop()
            deadline = loop.time() + timeout
            mid_frame = False
            try:
                # asyncio.timeout, not wait_for: on 3.11 wait_for can swallow a cancellation
                async with asyncio.timeout_at(deadline):
                    self._writer.write(mbap.encode_frame(transaction_id, unit, pdu))
                    await self._writer.drain()
                    while True:  # a cancelled readexactly consumes nothing, so the stream stays aligned
                        header = await self._reader.readexactly(mbap.MBAP_LENGTH)
                        answered_id, answered_by, length = mbap.decode_header(header)
                        mid_frame = True
                        body = await self._reader.readexactly(length)
                        mid_frame = False
                        if answered_id == transaction_id:
                            break
                        self.stale_responses += 1
            except TimeoutError as exc:
                if mid_frame:  # the stream is out of step: start over on a fresh connection
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
