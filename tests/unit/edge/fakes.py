"""Test doubles for the edge: a tiny Modbus device answering through protocols.modbus.pdu,
a bus of them for the in-memory transport, and a sink that records what the edge delivers."""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import AsyncIterator, Callable, Mapping

from device_profiles.loader import ProfileRegistry
from device_profiles.schema import DeviceProfile
from edge.clock import Clock
from edge.config import BusConfig
from edge.errors import TransportError
from edge.model import DeviceSnapshot, FaultChange
from edge.runtime import Edge
from edge.transport import InMemoryTransport, Transport
from protocols.modbus.errors import ModbusExceptionResponse
from protocols.modbus.pdu import (
    ReadRequest,
    Table,
    build_exception,
    build_read_response,
    build_write_response,
    parse_request,
)

REGISTRY = ProfileRegistry.load()


def profile(model: str) -> DeviceProfile:
    return REGISTRY.get(model)


class FakeDevice:
    """A Modbus server in a dict: unmapped addresses answer exception 0x02, like a real map."""

    def __init__(self, clock: Clock | None = None) -> None:
        self.tables: dict[Table, dict[int, int]] = {table: {} for table in Table}
        self.dead = False
        # one-shot faults, in order: an error to raise, an exception code, or raw response bytes
        self.faults: deque[TransportError | int | bytes] = deque()
        self.requests: list[tuple[float, bytes]] = []  # (clock time, request PDU)
        self._clock = clock

    def set(self, table: Table, address: int, value: int) -> None:
        self.tables[table][address] = value & 0xFFFF

    def set_temp(self, address: int, celsius: float) -> None:
        """A signed int16 in tenths of a degree, like every controller here."""
        self.set(Table.HOLDING, address, round(celsius * 10))

    def set_bit(self, table: Table, address: int, bit: int, on: bool) -> None:
        word = self.tables[table].get(address, 0)
        self.set(table, address, word | (1 << bit) if on else word & ~(1 << bit))

    def answer(self, pdu: bytes) -> bytes | None:
        self.requests.append((self._clock.monotonic() if self._clock else 0.0, pdu))
        if self.dead:
            return None
        if self.faults:
            fault = self.faults.popleft()
            if isinstance(fault, int):
                return build_exception(pdu[0], fault)
            if isinstance(fault, bytes):
                return fault
            raise fault
        try:
            request = parse_request(pdu)
        except ModbusExceptionResponse as exc:
            return build_exception(exc.function, exc.code)
        if not isinstance(request, ReadRequest):
            return build_write_response(request)
        table = self.tables[request.table]
        addresses = range(request.address, request.address + request.count)
        if any(a not in table for a in addresses):
            return build_exception(pdu[0], 0x02)
        return build_read_response(request.table, [table[a] for a in addresses])

    def poll_starts(self, reads_per_poll: int) -> list[float]:
        """Clock times at which polls began (every request of a healthy device answers)."""
        return [t for t, _ in self.requests[::reads_per_poll]]


def dixell(clock: Clock | None = None, air: float = 4.0) -> FakeDevice:
    """A healthy Dixell XR75CX: every mapped register answers."""
    device = FakeDevice(clock)
    device.set_temp(256, air)
    device.set(Table.HOLDING, 257, 0)
    device.set_temp(886, 3.0)
    device.set(Table.HOLDING, 3328, 0)
    device.set(Table.HOLDING, 3329, 0)
    device.set(Table.DISCRETE, 512, 1)
    device.set(Table.DISCRETE, 513, 0)
    return device


def danfoss(clock: Clock | None = None, air: float = 3.0, *, fill_gaps: bool = True) -> FakeDevice:
    """An AK-CC55; without ``fill_gaps`` the unused registers between its points are unmapped."""
    device = FakeDevice(clock)
    p = profile("danfoss-ak-cc55")
    for point in p.points:
        for offset in range(point.width):
            device.set(point.table, point.address + offset, 0)
    if fill_gaps:
        for address in [*range(2509, 2541), *range(20002, 20010)]:
            device.set(Table.HOLDING, address, 0)  # the bridged gaps of the coalesced reads
    device.set_temp(2529, air + 1)
    device.set_temp(2530, air)
    return device


class FakeBus:
    """Units on one in-memory bus; an absent unit is silent."""

    def __init__(self, devices: Mapping[int, FakeDevice]) -> None:
        self.devices = dict(devices)

    def handler(self, unit: int, pdu: bytes) -> bytes | None:
        device = self.devices.get(unit)
        return None if device is None else device.answer(pdu)


def memory_factory(
    buses: Mapping[str, FakeBus], clock: Clock, *, latency: float = 0.0
) -> Callable[[BusConfig, Mapping[int, DeviceProfile]], Transport]:
    def factory(bus: BusConfig, profiles: Mapping[int, DeviceProfile]) -> Transport:
        return InMemoryTransport(buses[bus.name].handler, clock, latency=latency, name=bus.name)

    return factory


class RecordingSink:
    def __init__(self) -> None:
        self.faults: list[FaultChange] = []
        self.snapshots: list[DeviceSnapshot] = []

    async def fault_changed(self, change: FaultChange) -> None:
        self.faults.append(change)

    async def device_polled(self, snapshot: DeviceSnapshot) -> None:
        self.snapshots.append(snapshot)

    def codes(self, device_id: str | None = None) -> list[tuple[str, str]]:
        return [(f.fault_code, f.state.value) for f in self.faults if device_id in (None, f.device_id)]

    def latest(self, device_id: str) -> DeviceSnapshot:
        return next(s for s in reversed(self.snapshots) if s.device_id == device_id)


@contextlib.asynccontextmanager
async def running(edge: Edge) -> AsyncIterator[Edge]:
    """Open the edge and run it in the background for the body of the block."""
    async with edge:
        task = asyncio.create_task(edge.run())
        try:
            yield edge
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


async def wait_until(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    """Poll ``condition`` in real time; fail the test instead of hanging."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():
        if loop.time() > deadline:
            raise AssertionError(f"condition not met within {timeout} s")
        await asyncio.sleep(0.01)


def value_of(snapshot: DeviceSnapshot, point: str) -> object:
    return next(r.value for r in snapshot.readings if r.point == point)


def quality_of(snapshot: DeviceSnapshot, point: str) -> str:
    return next(r.quality.value for r in snapshot.readings if r.point == point)
