"""Modbus RTU server on a pseudo-terminal (simulators layer): a serial bus of several slaves.

The pty's slave side is symlinked at a configured path, so an edge opens it with pyserial
exactly like /dev/ttyUSB0. Requests are framed by length (known per function code), or by
silence for functions whose length the slave cannot know. As on a real bus: frames with a
bad CRC and frames for other unit ids get no answer, broadcast writes (unit 0) are carried
out silently. With `wire_timing` each answer takes the time it would on the wire (request +
t3.5 + device turnaround + response), and a request that starts before the line has been
quiet for t3.5 is garbled and ignored.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from protocols.modbus import CrcError, FrameError, FunctionCode, rtu
from simulators.device import SimulatedDevice, devices_by_unit
from simulators.errors import SimulatorError
from simulators.wire import rtu_request_length, rtu_response
from simulators.pty_link import PtyLink

log = logging.getLogger(__name__)

RX_LIMIT = 4096  # bytes buffered before a frame is found; beyond that the line is noise
MIN_SILENCE_S = 0.02  # a pty delivers bytes in bursts; shorter gaps than this are not silence
_BROADCAST_FUNCTIONS = (
    FunctionCode.WRITE_SINGLE_COIL,
    FunctionCode.WRITE_SINGLE_REGISTER,
    FunctionCode.WRITE_MULTIPLE_REGISTERS,
)


@dataclass(slots=True)
class RtuStats:
    frames: int = 0
    responses: int = 0
    silent: int = 0  # offline device: no answer
    crc_errors: int = 0
    other_unit: int = 0  # for a unit id not on this bus
    broadcasts: int = 0
    incomplete: int = 0  # a partial frame followed by silence
    garbled: int = 0  # started before t3.5 of quiet (wire_timing)
    overflows: int = 0
    dropped: int = 0  # answer could not be written: nobody reads the port


class ModbusRtuServer:
    """Async context manager: opens the pty and its link on enter and serves until exit."""

    def __init__(
        self,
        devices: Iterable[SimulatedDevice],
        *,
        link: Path | str,
        baudrate: int = 9600,
        wire_timing: bool = False,
        turnaround_s: float = 0.005,
    ) -> None:
        self._devices = devices_by_unit(devices)
        self.link = Path(link)
        self.baudrate = baudrate
        self.wire_timing = wire_timing
        self.turnaround_s = turnaround_s
        self.stats = RtuStats()
        self._pty = PtyLink(self.link, "Modbus RTU")
        self._rx = bytearray()
        self._rx_at = 0.0  # loop time of the latest bytes
        self._quiet_at = 0.0  # loop time the line is free again (wire_timing)
        self._rx_event = asyncio.Event()

    @property
    def slave_name(self) -> str:
        return self._pty.slave_name

    async def __aenter__(self) -> ModbusRtuServer:
        self._pty.start(self._on_readable, self._serve, name=f"rtu-server {self.link}")
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self._pty.stop()

    # --- receiving --------------------------------------------------------------------------

    def _on_readable(self) -> None:
        try:
            data = os.read(self._pty.master, RX_LIMIT)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as exc:  # EIO: no slave side open (cannot happen while we hold it)
            log.error("rtu server on %s: reading the pty failed, no longer serving: %s", self.link, exc)
            asyncio.get_running_loop().remove_reader(self._pty.master)  # never spin on a broken fd
            return
        now = asyncio.get_running_loop().time()
        if self.wire_timing and now < self._quiet_at:
            # Collides with our answer or its t3.5: noise, and the silence timer starts again.
            self.stats.garbled += 1
            self._rx.clear()
            quiet_after_noise = now + rtu.wire_time(len(data), self.baudrate) + rtu.t35(self.baudrate)
            self._quiet_at = max(self._quiet_at, quiet_after_noise)
            return
        if len(self._rx) + len(data) > RX_LIMIT:
            self.stats.overflows += 1
            self._rx.clear()
            return
        self._rx += data
        self._rx_at = now
        self._rx_event.set()

    async def _serve(self) -> None:
        silence = max(rtu.t35(self.baudrate), MIN_SILENCE_S)
        while True:
            if not self._rx:
                self._rx_event.clear()
                await self._rx_event.wait()
                continue
            length = rtu_request_length(self._rx)
            if length is not None and 0 < length <= len(self._rx):
                frame = bytes(self._rx[:length])
                del self._rx[:length]
                await self._handle(frame)
                continue
            self._rx_event.clear()  # wait for the rest, or for the silence that ends the frame
            try:
                async with asyncio.timeout(silence):
                    await self._rx_event.wait()
            except TimeoutError:
                frame = bytes(self._rx)
                self._rx.clear()
                if length is None:
                    await self._handle(frame)  # a function we cannot size: framed by silence
                else:
                    self.stats.incomplete += 1

    async def _handle(self, frame: bytes) -> None:
        self.stats.frames += 1
        try:
            unit, pdu = rtu.decode_frame(frame)
        except CrcError:
            self.stats.crc_errors += 1
            self._rx.clear()  # whatever followed in the same burst is noise too
            return
        except FrameError:
            self.stats.incomplete += 1
            return
        if unit == 0:
            self.stats.broadcasts += 1
            if pdu and pdu[0] in _BROADCAST_FUNCTIONS:
                for target in self._devices.values():
                    target.handle_pdu(pdu)
            return
        device = self._devices.get(unit)
        if device is None:
            self.stats.other_unit += 1
            return
        response = device.handle_pdu(pdu)
        if response is None:
            self.stats.silent += 1
            return
        out = rtu_response(unit, response, device.faults.framing_fault)
        if self.wire_timing:
            await self._wait_wire_time(len(frame), len(out))
        self._send(out)

    async def _wait_wire_time(self, request_bytes: int, response_bytes: int) -> None:
        loop = asyncio.get_running_loop()
        t35 = rtu.t35(self.baudrate)
        done_at = (
            self._rx_at
            + rtu.wire_time(request_bytes, self.baudrate)
            + t35
            + self.turnaround_s
            + rtu.wire_time(response_bytes, self.baudrate)
        )
        self._quiet_at = done_at + t35
        await asyncio.sleep(max(0.0, done_at - loop.time()))

    def _send(self, data: bytes) -> None:
        try:
            written = os.write(self._pty.master, data)
        except (BlockingIOError, InterruptedError):
            written = 0
        if written < len(data):
            self.stats.dropped += 1
            return
        self.stats.responses += 1
