"""The serial RTU transport through pyserial on a real pseudo-terminal pair.

A responder thread plays the devices on the master side, answering with
protocols.modbus.rtu frames; faults (bad CRC, wrong unit, truncation, silence, late
answers) are scripted per request.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import select
import threading
import time
import tty
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest

from device_profiles.schema import SerialSettings
from edge.clock import SystemClock
from edge.config import BusConfig, DeviceConfig, EdgeConfig
from edge.errors import BadCrc, BadFrame, DeviceException, DeviceTimeout, LinkDown
from edge.runtime import Edge
from edge.transport import SerialRtuTransport
from protocols.modbus.pdu import Table, build_read_request, parse_read_response
from protocols.modbus.rtu import decode_frame, encode_frame, t35
from tests.unit.edge.fakes import REGISTRY, FakeDevice, RecordingSink, dixell, running, value_of

READ_AIR = build_read_request(Table.HOLDING, 256, 1)
SETTINGS = SerialSettings(baudrate=9600)


@dataclass
class Responder:
    """The far end of the serial line: answers every 8-byte request frame."""

    master: int
    devices: dict[int, FakeDevice]
    faults: deque[str] = field(default_factory=deque)  # crc, wrong_unit, truncate, silent, late, exception
    received_at: list[float] = field(default_factory=list)
    answered_at: list[float] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._stop_r, self._stop_w = os.pipe()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        os.write(self._stop_w, b"x")
        self._thread.join(timeout=5)
        os.close(self._stop_r)
        os.close(self._stop_w)

    def _run(self) -> None:
        buffer = b""
        while True:
            ready, _, _ = select.select([self.master, self._stop_r], [], [])
            if self._stop_r in ready:
                return
            try:
                buffer += os.read(self.master, 256)
            except OSError:
                return
            while len(buffer) >= 8:  # every request here is a read: unit, function, address, count, CRC
                frame, buffer = buffer[:8], buffer[8:]
                self.received_at.append(time.monotonic())
                self._answer(frame)

    def _answer(self, frame: bytes) -> None:
        unit, pdu = decode_frame(frame)
        fault = self.faults.popleft() if self.faults else ""
        device = self.devices.get(unit)
        if device is None or fault == "silent":
            return
        response = device.answer(pdu)
        assert response is not None
        reply = encode_frame(unit, response)
        if fault == "exception":
            reply = encode_frame(unit, bytes([pdu[0] | 0x80, 0x02]))
        elif fault == "crc":
            reply = reply[:-1] + bytes([reply[-1] ^ 0xFF])
        elif fault == "wrong_unit":
            reply = encode_frame(unit + 1, response)
        elif fault == "truncate":
            reply = reply[:-3]
        elif fault == "late":
            time.sleep(0.25)
        os.write(self.master, reply)
        self.answered_at.append(time.monotonic())


@pytest.fixture
def line() -> Iterator[tuple[str, Responder]]:
    master, slave = os.openpty()
    tty.setraw(slave)
    responder = Responder(master, {1: dixell(air=15.3), 2: dixell(air=-2.5)})
    responder.start()
    try:
        yield os.ttyname(slave), responder
    finally:
        responder.stop()
        os.close(slave)
        with contextlib.suppress(OSError):
            os.close(master)


async def read_air(transport: SerialRtuTransport, unit: int = 1, timeout: float = 0.2) -> int:
    pdu = await transport.request(unit, READ_AIR, timeout)
    return parse_read_response(Table.HOLDING, 1, pdu)[0]


async def test_reads_through_pyserial_on_a_pty(line: tuple[str, Responder]) -> None:
    path, _ = line
    transport = SerialRtuTransport(path, SerialSettings(baudrate=19200, parity="E"))
    await transport.open()
    try:
        assert await read_air(transport, 1) == 153
        assert await read_air(transport, 2) == 0xFFE7  # -2.5 °C
    finally:
        await transport.close()


@pytest.mark.parametrize(
    ("fault", "error", "match"),
    [
        ("exception", DeviceException, "0x02"),
        ("crc", BadCrc, "CRC mismatch"),
        ("wrong_unit", BadFrame, "from unit 2, expected unit 1"),
        ("truncate", BadFrame, "truncated"),
        ("silent", DeviceTimeout, "did not answer"),
    ],
)
async def test_a_bad_answer_fails_one_request_and_the_next_one_works(
    line: tuple[str, Responder], fault: str, error: type[Exception], match: str
) -> None:
    path, responder = line
    transport = SerialRtuTransport(path, SETTINGS)
    await transport.open()
    try:
        responder.faults.append(fault)
        started = time.monotonic()
        with pytest.raises(error, match=match):
            await read_air(transport, timeout=1.0)
        if fault == "truncate":
            assert time.monotonic() - started < 0.5  # the silence ends it, not the 1 s timeout
        assert await read_air(transport) == 153
    finally:
        await transport.close()


async def test_a_late_answer_is_flushed_not_taken_for_the_next(line: tuple[str, Responder]) -> None:
    path, responder = line
    responder.devices[2].set_temp(256, 99.9)
    transport = SerialRtuTransport(path, SETTINGS)
    await transport.open()
    try:
        responder.faults.append("late")
        with pytest.raises(DeviceTimeout):
            await read_air(transport, unit=2, timeout=0.05)
        await asyncio.sleep(0.4)  # the late answer (999 for unit 2) has arrived meanwhile
        assert await read_air(transport, unit=1) == 153
        assert transport.stale_bytes == 7
    finally:
        await transport.close()


async def test_t35_and_the_inter_frame_gap_separate_frames(line: tuple[str, Responder]) -> None:
    path, responder = line
    gap = 0.03
    transport = SerialRtuTransport(path, SETTINGS, inter_frame_gaps={1: gap})
    await transport.open()
    try:
        for _ in range(6):
            await read_air(transport)
    finally:
        await transport.close()
    quiet = t35(9600) + gap
    silences = [nxt - done for done, nxt in zip(responder.answered_at, responder.received_at[1:], strict=False)]
    assert len(silences) == 5
    assert min(silences) >= quiet - 0.002, silences


async def test_unplugged_line_is_link_down_and_reopened_later(line: tuple[str, Responder]) -> None:
    path, _ = line
    missing = SerialRtuTransport("/dev/ttyDOES-NOT-EXIST", SETTINGS, reopen_delay=0.05)
    await missing.open()  # logged, not raised: the edge starts with the adapter unplugged
    with pytest.raises(LinkDown, match="not open"):
        await missing.request(1, READ_AIR, 0.1)  # no reopen attempt inside the delay
    await asyncio.sleep(0.06)
    with pytest.raises(LinkDown, match="cannot open"):
        await missing.request(1, READ_AIR, 0.1)
    transport = SerialRtuTransport(path, SETTINGS, reopen_delay=0.05)
    await transport.open()
    assert await read_air(transport) == 153
    await transport.close()
    await asyncio.sleep(0.06)
    assert await read_air(transport) == 153  # reopened by the request
    await transport.close()


async def test_a_hung_up_line_is_link_down() -> None:
    master, slave = os.openpty()
    transport = SerialRtuTransport(os.ttyname(slave), SETTINGS)
    await transport.open()
    os.close(slave)
    os.close(master)  # the adapter vanished: reads on the port now fail with EIO
    await asyncio.sleep(0.05)
    with pytest.raises(LinkDown):
        await transport.request(1, READ_AIR, 0.1)
    await transport.close()


async def test_edge_polls_over_the_pty_and_survives_a_dead_unit(line: tuple[str, Responder]) -> None:
    path, responder = line
    responder.devices[1].set_bit(Table.HOLDING, 3329, 9, True)  # compressor alarm, delay 0
    bus = BusConfig(
        name="line-1",
        transport="rtu",
        port=path,
        poll_interval_s=0.2,
        timeout_ms=50,
        devices=[
            DeviceConfig(id="case-1", unit=1, profile="dixell-xr75cx"),
            DeviceConfig(id="case-3", unit=3, profile="dixell-xr75cx"),  # nobody answers unit 3
            DeviceConfig(id="case-2", unit=2, profile="dixell-xr75cx"),
        ],
    )
    sink = RecordingSink()
    edge = Edge(EdgeConfig(buses=[bus]), REGISTRY, sink, SystemClock())
    async with running(edge):
        for _ in range(100):
            await asyncio.sleep(0.05)
            if sum(1 for s in sink.snapshots if s.device_id == "case-2") >= 3:
                break
        metrics = edge.metrics()
    assert value_of(sink.latest("case-1"), "air_temp") == 15.3
    assert value_of(sink.latest("case-2"), "air_temp") == -2.5
    assert ("compressor_alarm", "raised") in sink.codes("case-1")
    dead = next(d for d in metrics.devices if d.device_id == "case-3")
    assert dead.requests.timeouts >= 1 and not dead.online
    assert metrics.buses[0].requests.responses >= 3 * 2 * 7


async def test_a_line_that_never_goes_quiet_fails_the_request_not_the_bus(line: tuple[str, Responder]) -> None:
    """A stuck transmitter (or a device at another baud rate) must not block the bus forever."""
    path, responder = line
    # At 1200 baud t3.5 is 32 ms: a byte every ~1 ms keeps the line busy even when the test
    # machine is loaded and sleeps overshoot (at 9600 baud a 4 ms hiccup would look quiet).
    transport = SerialRtuTransport(path, SerialSettings(baudrate=1200))
    await transport.open()
    stop = threading.Event()

    def babble() -> None:
        while not stop.is_set():
            os.write(responder.master, b"\xAA")
            time.sleep(0.001)

    babbler = threading.Thread(target=babble, daemon=True)
    babbler.start()
    try:
        await asyncio.sleep(0.05)  # the babble is on the line before the request
        started = time.monotonic()
        with pytest.raises(BadFrame, match="never went quiet"):
            await read_air(transport, timeout=0.3)
        assert time.monotonic() - started < 1.5
        stop.set()
        babbler.join(timeout=2)
        await asyncio.sleep(0.05)
        assert await read_air(transport, timeout=1.0) == 153
    finally:
        stop.set()
        await transport.close()
