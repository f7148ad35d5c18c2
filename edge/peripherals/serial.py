"""A serial port for byte protocols (edge layer): pyserial, without blocking the event loop.

As in ``edge.transport.serial`` (both use ``edge.transport.serial_port``), the port's descriptor is non-blocking and watched with
``loop.add_reader``; received bytes land in a buffer that ``exchange`` awaits. Before each
request, input still buffered (a late reply to a timed-out request, print data echoed, line
noise) is dropped and counted in ``stale_bytes``. A port that cannot be opened is retried by
the next exchange, at most once per ``reopen_delay`` seconds.
"""

from __future__ import annotations

import asyncio

from device_profiles.schema import SerialSettings
from edge.errors import LinkDown
from edge.peripherals.transport import ReplyLength, complete_reply, timed_out
from edge.transport.serial_port import AsyncSerialPort
from protocols.modbus.rtu import wire_time


class SerialByteTransport:
    def __init__(
        self, port: str, settings: SerialSettings, *, rtscts: bool = False, reopen_delay: float = 2.0
    ) -> None:
        self._port = port
        self._settings = settings
        self._line = AsyncSerialPort(port, settings, on_data=self._on_data, on_hangup=self._on_hangup,
                                     rtscts=rtscts, reopen_delay=reopen_delay)
        self._lock = asyncio.Lock()
        self._rx = bytearray()
        self._rx_event = asyncio.Event()
        self._hung_up = False
        self.stale_bytes = 0

    @property
    def name(self) -> str:
        return self._port

    async def open(self) -> None:
        async with self._lock:
            try:
                self._open_port()
            except LinkDown as exc:
                self._line.link_log.failed(str(exc))

    async def close(self) -> None:
        async with self._lock:
            self._line.close()

    async def exchange(self, request: bytes, reply_length: ReplyLength, timeout: float) -> bytes:
        async with self._lock:
            if not self._line.is_open:
                self._line.ensure_open()
                self._reset()
            if self._hung_up:
                self._line.close()
                raise LinkDown(f"{self._port} hung up")
            self.stale_bytes += len(self._rx)
            self._rx.clear()
            await self._line.write(request, retry_s=0.001)
            loop = asyncio.get_running_loop()
            deadline = loop.time() + timeout + wire_time(len(request), self._settings.baudrate)
            while (n := complete_reply(bytes(self._rx), reply_length)) is None:
                if self._hung_up:
                    self._line.close()
                    raise LinkDown(f"{self._port} hung up")
                self._rx_event.clear()
                try:
                    async with asyncio.timeout_at(deadline):
                        await self._rx_event.wait()
                except TimeoutError:
                    received = bytes(self._rx)
                    self._rx.clear()
                    raise timed_out(received, timeout, request) from None
            reply = bytes(self._rx[:n])
            del self._rx[:n]
            self._line.link_log.ok()
            return reply

    def _open_port(self) -> None:
        self._line.open()
        self._reset()

    def _reset(self) -> None:
        self._rx.clear()
        self._hung_up = False

    def _on_data(self, data: bytes) -> None:
        self._rx += data
        self._rx_event.set()

    def _on_hangup(self) -> None:
        self._hung_up = True
        self._rx_event.set()
