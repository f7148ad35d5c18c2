"""Modbus TCP server (simulators layer): one endpoint answering several unit ids.

Frames with protocols.modbus.tcp (MBAP); the devices answer the PDUs. A unit id no device
has gets exception 0x0B (gateway target failed to respond), as a Modbus TCP gateway does.
An `offline` device stays silent; framing faults spoil the MBAP frame.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from types import TracebackType

from protocols.modbus import FrameError, build_exception, tcp
from simulators.device import SimulatedDevice, devices_by_unit
from simulators.errors import SimulatorError
from simulators.wire import tcp_response

log = logging.getLogger(__name__)

GATEWAY_TARGET_FAILED = 0x0B


@dataclass(slots=True)
class TcpStats:
    connections: int = 0
    requests: int = 0
    responses: int = 0
    silent: int = 0  # offline device: no answer
    unknown_unit: int = 0
    bad_frames: int = 0  # malformed MBAP header: connection closed


class ModbusTcpServer:
    """Async context manager: listens on enter (port 0 = a free port), closes every connection on exit."""

    def __init__(self, devices: Iterable[SimulatedDevice], *, host: str = "127.0.0.1", port: int = 0) -> None:
        self._devices = devices_by_unit(devices)
        self.host = host
        self._requested_port = port
        self.port = port
        self.stats = TcpStats()
        self._server: asyncio.Server | None = None
        self._connections: set[asyncio.Task[None]] = set()

    async def __aenter__(self) -> ModbusTcpServer:
        try:
            self._server = await asyncio.start_server(self._serve_connection, self.host, self._requested_port)
        except OSError as exc:
            raise SimulatorError(f"cannot serve Modbus TCP on {self.host}:{self._requested_port}: {exc}") from exc
        self.port = int(self._server.sockets[0].getsockname()[1])
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._server is not None:
            self._server.close()
        for task in list(self._connections):
            task.cancel()
        await asyncio.gather(*self._connections, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()
            self._server = None

    def answer(self, transaction_id: int, unit: int, pdu: bytes) -> bytes | None:
        """The whole MBAP frame to send back for one request, or None for silence."""
        self.stats.requests += 1
        device = self._devices.get(unit)
        if device is None:
            self.stats.unknown_unit += 1
            return tcp.encode_frame(transaction_id, unit, build_exception(pdu[0] if pdu else 0, GATEWAY_TARGET_FAILED))
        response = device.handle_pdu(pdu)
        if response is None:
            self.stats.silent += 1
            return None
        self.stats.responses += 1
        return tcp_response(transaction_id, unit, response, device.faults.framing_fault)

    async def _serve_connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._connections.add(task)
        self.stats.connections += 1
        try:
            while True:
                header = await reader.readexactly(tcp.MBAP_LENGTH)
                transaction_id, unit, length = tcp.decode_header(header)
                pdu = await reader.readexactly(length)
                frame = self.answer(transaction_id, unit, pdu)
                if frame is not None:
                    writer.write(frame)
                    await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass  # the client went away
        except asyncio.CancelledError:
            # The server is closing. End normally: on Python 3.11 asyncio logs a traceback for a
            # connection task of start_server that ends cancelled.
            pass
        except FrameError as exc:  # a TCP stream cannot be resynchronised: drop the connection
            self.stats.bad_frames += 1
            log.debug("modbus tcp %s:%s: closing connection on a bad frame: %s", self.host, self.port, exc)
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()
            if task is not None:
                self._connections.discard(task)
