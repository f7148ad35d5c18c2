"""Serial server for one simulated peripheral on a pseudo-terminal (simulators layer).

As with the Modbus RTU server, the pty's slave side is symlinked at a configured path, so a
host opens it with pyserial like /dev/ttyUSB0. Received bytes are split into requests by the
peripheral's `request_length`; a partial request followed by `inter_byte_timeout_s` of
silence is dropped (ccTalk's 50 ms inter-byte rule), and each request's answer is written
back at once. The pty has no local echo; ``echo=True`` writes every received byte straight
back, as a real single-wire ccTalk bus does (the host reads its own request before the reply).
"""

from __future__ import annotations

import asyncio
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Protocol

from simulators.errors import SimulatorError
from simulators.pty_link import PtyLink

log = logging.getLogger(__name__)

RX_LIMIT = 4096  # bytes buffered without a complete request; beyond that the line is noise


class SerialPeripheral(Protocol):
    def request_length(self, buffer: bytes) -> int | None:
        """Bytes that make up the request at buffer[0], or None while it is incomplete."""

    def handle(self, request: bytes) -> bytes:
        """The bytes the device sends back (b"" for no answer)."""


@dataclass(slots=True)
class PeripheralStats:
    requests: int = 0
    responses: int = 0
    incomplete: int = 0  # partial request followed by silence
    overflows: int = 0
    dropped: int = 0  # the answer could not be written
    echoed: int = 0  # bytes written back as the line's echo


class PeripheralSerialServer:
    """Async context manager: opens the pty and its link on enter and serves until exit."""

    def __init__(
        self,
        peripheral: SerialPeripheral,
        *,
        link: Path | str,
        inter_byte_timeout_s: float = 0.05,
        echo: bool = False,
    ) -> None:
        self.peripheral = peripheral
        self.echo = echo
        self.link = Path(link)
        self.inter_byte_timeout_s = inter_byte_timeout_s
        self.stats = PeripheralStats()
        self._pty = PtyLink(self.link, "a serial peripheral")
        self._rx = bytearray()
        self._rx_event = asyncio.Event()

    @property
    def slave_name(self) -> str:
        return self._pty.slave_name

    async def __aenter__(self) -> PeripheralSerialServer:
        self._pty.start(self._on_readable, self._serve, name=f"peripheral {self.link}")
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self._pty.stop()

    def _on_readable(self) -> None:
        try:
            data = os.read(self._pty.master, RX_LIMIT)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as exc:
            log.error("peripheral on %s: reading the pty failed, no longer serving: %s", self.link, exc)
            asyncio.get_running_loop().remove_reader(self._pty.master)
            return
        if self.echo and data:
            self._write(data)
            self.stats.echoed += len(data)
        if len(self._rx) + len(data) > RX_LIMIT:
            self.stats.overflows += 1
            self._rx.clear()
            return
        self._rx += data
        self._rx_event.set()

    async def _serve(self) -> None:
        while True:
            if not self._rx:
                self._rx_event.clear()
                await self._rx_event.wait()
                continue
            length = self.peripheral.request_length(bytes(self._rx))
            if length is not None and 0 < length <= len(self._rx):
                request = bytes(self._rx[:length])
                del self._rx[:length]
                self._answer(request)
                continue
            self._rx_event.clear()
            try:
                async with asyncio.timeout(self.inter_byte_timeout_s):
                    await self._rx_event.wait()
            except TimeoutError:
                self.stats.incomplete += 1
                self._rx.clear()

    def _answer(self, request: bytes) -> None:
        self.stats.requests += 1
        out = self.peripheral.handle(request)
        if not out:
            return
        if self._write(out):
            self.stats.responses += 1

    def _write(self, out: bytes) -> bool:
        try:
            written = os.write(self._pty.master, out)
        except (BlockingIOError, InterruptedError):
            written = 0
        if written < len(out):
            self.stats.dropped += 1
            return False
        return True
