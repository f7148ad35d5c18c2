"""Modbus RTU over a serial port (edge layer), with pyserial, without blocking the event loop.

The port's file descriptor is non-blocking and watched with ``loop.add_reader``; received
bytes land in a buffer that ``request`` awaits. Before each request the transport waits
until the line has been silent for t3.5 (at the bus baud rate) plus the addressed device's
inter-frame gap, then drops any stale input (a late answer to a timed-out request).
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping

from device_profiles.schema import SerialSettings
from edge.errors import BadFrame, LinkDown
from edge.transport.rtu import RxBuffer, receive_response, response_frame_length
from edge.transport.serial_port import AsyncSerialPort
from protocols.modbus.rtu import char_time, encode_frame, t35, wire_time



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
        self._rx = RxBuffer()
        self._line = AsyncSerialPort(port, settings, on_data=self._rx.feed, on_hangup=self._rx.close,
                                     reopen_delay=reopen_delay)
        self._lock = asyncio.Lock()
        self._last_tx = 0.0  # loop time our last request left the wire
        self._last_unit: int | None = None
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
                self._line.link_log.failed(str(exc))

    async def close(self) -> None:
        async with self._lock:
            self._line.close()

    async def request(self, unit: int, pdu: bytes, timeout: float) -> bytes:
        async with self._lock:
            if not self._line.is_open:
                self._line.ensure_open()
                self._rx.reset()
            await self._wait_for_silence(unit, limit=timeout)
            self._flush_input()
            frame = encode_frame(unit, pdu)
            self._last_tx = await self._line.write(frame, retry_s=char_time(self._settings.baudrate))
            self._last_unit = unit
            baud = self._settings.baudrate
            on_wire = wire_time(len(frame) + response_frame_length(pdu, b""), baud)
            try:
                response = await receive_response(
                    self._rx.receive, unit, pdu, timeout=timeout + on_wire, silence=max(0.05, 20 * char_time(baud))
                )
            except LinkDown as exc:
                self._line.close()
                self._line.link_log.failed(str(exc))
                raise
            self._line.link_log.ok()
            return response

    def _open_port(self) -> None:
        self._line.open()
        self._rx.reset()

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
        if self._rx.closed:
            self._line.close()
            self._line.link_log.failed("the port hung up")
            raise LinkDown(f"{self._port} hung up")
        self.stale_bytes += self._rx.drop()
        self._line.reset_input_buffer()
