"""Modbus RTU over a serial port (edge layer), with pyserial, without blocking the event loop.

The port's file descriptor is non-blocking and watched with ``loop.add_reader``; received
bytes land in a buffer that ``request`` awaits. Before each request the transport waits
until the line has been silent for t3.5 (at the bus baud rate) plus the addressed device's
inter-frame gap, then drops any stale input (a late answer to a timed-out request).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Mapping

import serial

from device_profiles.schema import SerialSettings
from edge.errors import BadFrame, LinkDown
from edge.logs import FailureLog
from edge.transport.rtu import RxBuffer, receive_response, response_frame_length
from protocols.modbus.rtu import char_time, encode_frame, t35, wire_time

logger = logging.getLogger(__name__)


class SerialRtuTransport:
    def __init__(
        self,
        port: str,
        settings: SerialSettings,
        *,
        inter_frame_gaps: Mapping[int, float] | None = None,
        reopen_delay: float = 2.0,
    ) -> None:
        self._port = port
        self._settings = settings
        self._gaps = dict(inter_frame_gaps or {})
        self._reopen_delay = reopen_delay
        self._serial: serial.Serial | None = None
        self._lock = asyncio.Lock()
        self._rx = RxBuffer()
        self._last_tx = 0.0  # loop time our last request left the wire
        self._last_unit: int | None = None
        self._last_open_attempt: float | None = None
        self._link_log = FailureLog(logger, port)
        self.stale_bytes = 0  # bytes dropped before a request: late answers, noise

    @property
    def name(self) -> str:
        return self._port

    @property
    def quiet_time(self) -> float:
        """The t3.5 inter-frame silence at this bus's baud rate."""
        return t35(self._settings.baudrate)

    async def open(self) -> None:
        async with self._lock:
            try:
                self._open_port()
            except LinkDown as exc:
                self._link_log.failed(str(exc))

    async def close(self) -> None:
        async with self._lock:
            self._close_port()

    async def request(self, unit: int, pdu: bytes, timeout: float) -> bytes:
        async with self._lock:
            if self._serial is None:
                self._reopen()
            await self._wait_for_silence(unit, limit=timeout)
            self._flush_input()
            frame = encode_frame(unit, pdu)
            await self._write(frame)
            self._last_unit = unit
            baud = self._settings.baudrate
            on_wire = wire_time(len(frame) + response_frame_length(pdu, b""), baud)
            try:
                response = await receive_response(
                    self._rx.receive, unit, pdu, timeout=timeout + on_wire, silence=max(0.05, 20 * char_time(baud))
                )
            except LinkDown as exc:
                self._close_port()
                self._link_log.failed(str(exc))
                raise
            self._link_log.ok()
            return response

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
                timeout=0,
                exclusive=True,
            )
        except (serial.SerialException, OSError, ValueError) as exc:
            raise LinkDown(f"cannot open {self._port}: {exc}") from exc
        self._serial = port
        self._rx.reset()
        loop.add_reader(port.fileno(), self._on_readable)
        self._link_log.ok()
        logger.debug("%s open at %d %d%s%d", self._port, s.baudrate, s.bytesize, s.parity, s.stopbits)

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
            self._rx.feed(data)
        else:
            asyncio.get_running_loop().remove_reader(port.fileno())
            self._rx.close()

    # --- wire timing -------------------------------------------------------------------------

    async def _wait_for_silence(self, unit: int, limit: float) -> None:
        """Keep the line quiet for t3.5 plus the larger inter-frame gap of the two devices.

        A line that never goes quiet (a stuck transmitter, a device at another baud rate)
        fails the request after `limit` seconds, so the bus carries on and the noise is counted.
        """
        previous = self._gaps.get(self._last_unit, 0.0) if self._last_unit is not None else 0.0
        quiet = self.quiet_time + max(self._gaps.get(unit, 0.0), previous)
        loop = asyncio.get_running_loop()
        give_up = loop.time() + limit + quiet
        while (wait := max(self._rx.last_rx, self._last_tx) + quiet - loop.time()) > 0:
            if loop.time() + wait > give_up:
                self.stale_bytes += self._rx.drop()
                raise BadFrame(f"{self._port}: the line never went quiet for {quiet * 1000:.1f} ms "
                               f"within {limit:.2f} s (a stuck transmitter or a device at another baud rate?)")
            await asyncio.sleep(wait)  # late bytes arriving meanwhile push last_rx on

    def _flush_input(self) -> None:
        assert self._serial is not None
        if self._rx.closed:
            self._close_port()
            self._link_log.failed("the port hung up")
            raise LinkDown(f"{self._port} hung up")
        self.stale_bytes += self._rx.drop()
        try:
            self._serial.reset_input_buffer()
        except (serial.SerialException, OSError) as exc:
            self._close_port()
            raise LinkDown(f"{self._port}: {exc}") from exc

    async def _write(self, frame: bytes) -> None:
        assert self._serial is not None
        loop = asyncio.get_running_loop()
        fd = self._serial.fileno()
        view = memoryview(frame)
        give_up = loop.time() + 1.0 + wire_time(len(frame), self._settings.baudrate)
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
                    raise LinkDown(f"{self._port}: output blocked")
                await asyncio.sleep(char_time(self._settings.baudrate))
        self._last_tx = loop.time() + wire_time(len(frame), self._settings.baudrate)
