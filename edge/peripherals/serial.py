"""A serial port for byte protocols (edge layer): pyserial, without blocking the event loop.

As in ``edge.transport.serial``, the port's descriptor is non-blocking and watched with
``loop.add_reader``; received bytes land in a buffer that ``exchange`` awaits. Before each
request, input still buffered (a late reply to a timed-out request, print data echoed, line
noise) is dropped and counted in ``stale_bytes``. A port that cannot be opened is retried by
the next exchange, at most once per ``reopen_delay`` seconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os

import serial

from device_profiles.schema import SerialSettings
from edge.errors import LinkDown
from edge.logs import FailureLog
from edge.peripherals.transport import ReplyLength, complete_reply, timed_out
from protocols.modbus.rtu import wire_time

logger = logging.getLogger(__name__)


class SerialByteTransport:
    def __init__(
        self, port: str, settings: SerialSettings, *, rtscts: bool = False, reopen_delay: float = 2.0
    ) -> None:
        self._port = port
        self._settings = settings
        self._rtscts = rtscts
        self._reopen_delay = reopen_delay
        self._serial: serial.Serial | None = None
        self._lock = asyncio.Lock()
        self._rx = bytearray()
        self._rx_event = asyncio.Event()
        self._hung_up = False
        self._last_open_attempt: float | None = None
        self._link_log = FailureLog(logger, port)
        self.stale_bytes = 0

    @property
    def name(self) -> str:
        return self._port

    async def open(self) -> None:
        async with self._lock:
            try:
                self._open_port()
            except LinkDown as exc:
                self._link_log.failed(str(exc))

    async def close(self) -> None:
        async with self._lock:
            self._close_port()

    async def exchange(self, request: bytes, reply_length: ReplyLength, timeout: float) -> bytes:
        async with self._lock:
            if self._serial is None:
                self._reopen()
            if self._hung_up:
                self._close_port()
                raise LinkDown(f"{self._port} hung up")
            self.stale_bytes += len(self._rx)
            self._rx.clear()
            await self._write(request)
            loop = asyncio.get_running_loop()
            deadline = loop.time() + timeout + wire_time(len(request), self._settings.baudrate)
            while (n := complete_reply(bytes(self._rx), reply_length)) is None:
                if self._hung_up:
                    self._close_port()
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
            self._link_log.ok()
            return reply

    # --- port handling -------------------------------------------------------------------

    def _open_port(self) -> None:
        loop = asyncio.get_running_loop()
        self._last_open_attempt = loop.time()
        s = self._settings
        try:
            port = serial.Serial(
                port=self._port,
                baudrate=s.baudrate,
                bytesize=s.bytesize,
                parity=s.parity,
                stopbits=s.stopbits,
                rtscts=self._rtscts,
                timeout=0,
                exclusive=True,
            )
        except (serial.SerialException, OSError, ValueError) as exc:
            raise LinkDown(f"cannot open {self._port}: {exc}") from exc
        self._serial = port
        self._rx.clear()
        self._hung_up = False
        loop.add_reader(port.fileno(), self._on_readable)
        self._link_log.ok()

    def _reopen(self) -> None:
        now = asyncio.get_running_loop().time()
        if self._last_open_attempt is not None and now - self._last_open_attempt < self._reopen_delay:
            raise LinkDown(f"{self._port} is not open (next attempt in {self._reopen_delay:.1f} s)")
        try:
            self._open_port()
        except LinkDown as exc:
            self._link_log.failed(str(exc))
            raise

    def _close_port(self) -> None:
        port, self._serial = self._serial, None
        if port is None:
            return
        with contextlib.suppress(OSError, ValueError):
            asyncio.get_running_loop().remove_reader(port.fileno())
        with contextlib.suppress(serial.SerialException, OSError):
            port.close()

    def _on_readable(self) -> None:
        port = self._serial
        if port is None:
            return
        try:
            data = os.read(port.fileno(), 4096)
        except BlockingIOError:
            return
        except OSError:
            data = b""  # EIO: the other end hung up (USB adapter unplugged, pty closed)
        if data:
            self._rx += data
        else:
            asyncio.get_running_loop().remove_reader(port.fileno())
            self._hung_up = True
        self._rx_event.set()

    async def _write(self, data: bytes) -> None:
        assert self._serial is not None
        loop = asyncio.get_running_loop()
        fd = self._serial.fileno()
        view = memoryview(data)
        give_up = loop.time() + 1.0 + wire_time(len(data), self._settings.baudrate)
        while view:
            try:
                written = os.write(fd, view)
            except BlockingIOError:
                written = 0
            except OSError as exc:
                self._close_port()
                self._link_log.failed(f"write failed: {exc}")
                raise LinkDown(f"{self._port}: write failed: {exc}") from exc
            view = view[written:]
            if view:
                if loop.time() > give_up:
                    self._close_port()
                    raise LinkDown(f"{self._port}: output blocked (flow control held off?)")
                await asyncio.sleep(0.001)
