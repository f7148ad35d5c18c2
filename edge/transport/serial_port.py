"""One serial port, non-blocking, watched by the event loop (edge layer).

Shared by the Modbus RTU transport and the byte-protocol (ESC/POS, ccTalk) transport: pyserial
opens the port with ``timeout=0`` and ``exclusive=True``; the descriptor is watched with
``loop.add_reader`` and every chunk read is handed to ``on_data``; an end of file or EIO (a USB
adapter unplugged, a pty closed) calls ``on_hangup``. A port that cannot be opened is retried
by ``ensure_open`` at most once per ``reopen_delay`` seconds. pyserial's and the OS's errors
become ``LinkDown``; the first failure is logged, repeats are counted by ``FailureLog``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Callable

import serial

from device_profiles.schema import SerialSettings
from edge.errors import LinkDown
from edge.logs import FailureLog
from protocols.modbus.rtu import wire_time

logger = logging.getLogger(__name__)


class AsyncSerialPort:
    def __init__(
        self,
        path: str,
        settings: SerialSettings,
        *,
        on_data: Callable[[bytes], None],
        on_hangup: Callable[[], None],
        rtscts: bool = False,
        reopen_delay: float = 2.0,
    ) -> None:
        self.path = path
        self.settings = settings
        self._on_data = on_data
        self._on_hangup = on_hangup
        self._rtscts = rtscts
        self._reopen_delay = reopen_delay
        self._serial: serial.Serial | None = None
        self._last_open_attempt: float | None = None
        self.link_log = FailureLog(logger, path)

    @property
    def is_open(self) -> bool:
        return self._serial is not None

    def open(self) -> None:
        """Open now; LinkDown when the port cannot be opened."""
        loop = asyncio.get_running_loop()
        self._last_open_attempt = loop.time()
        s = self.settings
        try:
            port = serial.Serial(
                port=self.path,
                baudrate=s.baudrate,
                bytesize=s.bytesize,
                parity=s.parity,
                stopbits=s.stopbits,
                rtscts=self._rtscts,
                timeout=0,
                exclusive=True,
            )
        except (serial.SerialException, OSError, ValueError) as exc:
            raise LinkDown(f"cannot open {self.path}: {exc}") from exc
        self._serial = port
        loop.add_reader(port.fileno(), self._on_readable)
        self.link_log.ok()
        logger.debug("%s open at %d %d%s%d", self.path, s.baudrate, s.bytesize, s.parity, s.stopbits)

    def ensure_open(self) -> None:
        """Open the port if it is closed, unless the last attempt was under ``reopen_delay`` ago."""
        if self._serial is not None:
            return
        now = asyncio.get_running_loop().time()
        if self._last_open_attempt is not None and now - self._last_open_attempt < self._reopen_delay:
            raise LinkDown(f"{self.path} is not open (next attempt in {self._reopen_delay:.1f} s)")
        try:
            self.open()
        except LinkDown as exc:
            self.link_log.failed(str(exc))
            raise

    def close(self) -> None:
        port, self._serial = self._serial, None
        if port is None:
            return
        with contextlib.suppress(OSError, ValueError):
            asyncio.get_running_loop().remove_reader(port.fileno())
        with contextlib.suppress(serial.SerialException, OSError):
            port.close()

    def reset_input_buffer(self) -> None:
        """Drop what the driver holds that the loop has not read yet."""
        assert self._serial is not None
        try:
            self._serial.reset_input_buffer()
        except (serial.SerialException, OSError) as exc:
            self.close()
            raise LinkDown(f"{self.path}: {exc}") from exc

    async def write(self, data: bytes, *, retry_s: float) -> float:
        """Write all of ``data``; returns the loop time its last byte leaves the wire.

        A port that takes nothing for 1 s beyond the data's wire time (flow control held off,
        a dead adapter) is closed and LinkDown raised."""
        assert self._serial is not None
        loop = asyncio.get_running_loop()
        fd = self._serial.fileno()
        view = memoryview(data)
        on_wire = wire_time(len(data), self.settings.baudrate)
        give_up = loop.time() + 1.0 + on_wire
        while view:
            try:
                written = os.write(fd, view)
            except BlockingIOError:
                written = 0
            except OSError as exc:
                self.close()
                self.link_log.failed(f"write failed: {exc}")
                raise LinkDown(f"{self.path}: write failed: {exc}") from exc
            view = view[written:]
            if view:
                if loop.time() > give_up:
                    self.close()
                    raise LinkDown(f"{self.path}: output blocked (flow control held off?)")
                await asyncio.sleep(retry_s)
        return loop.time() + on_wire

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
            self._on_data(data)
        else:
            asyncio.get_running_loop().remove_reader(port.fileno())
            self._on_hangup()
