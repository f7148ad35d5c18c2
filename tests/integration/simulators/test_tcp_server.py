"""The Modbus TCP server, answered to pymodbus 3.16's client (an independent peer) and raw sockets."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from pymodbus.client import AsyncModbusTcpClient

from device_profiles import ProfileRegistry
from protocols.modbus import Table, build_read_request, tcp
from simulators.device import SimulatedDevice
from simulators.errors import SimulatorError
from simulators.lane import LaneModel
from simulators.tcp_server import ModbusTcpServer
from simulators.thermal import RefrigerationModel


@pytest.fixture(scope="module")
def registry() -> ProfileRegistry:
    return ProfileRegistry.load()


@pytest.fixture
def devices(registry: ProfileRegistry) -> dict[str, SimulatedDevice]:
    lane = SimulatedDevice("lane-01", 1, registry.get("storeguard-sco-lane"))
    dixell = SimulatedDevice("case-01", 2, registry.get("dixell-xr75cx"))
    danfoss = SimulatedDevice("case-02", 3, registry.get("danfoss-ak-cc55"))
    LaneModel(lane)
    RefrigerationModel(dixell, setpoint_c=3.0)
    RefrigerationModel(danfoss, setpoint_c=2.0)
    return {"lane": lane, "dixell": dixell, "danfoss": danfoss}


@pytest.fixture
async def server(devices: dict[str, SimulatedDevice]) -> AsyncIterator[ModbusTcpServer]:
    async with ModbusTcpServer(devices.values(), port=0) as server:
        yield server


@pytest.fixture
async def client(server: ModbusTcpServer) -> AsyncIterator[AsyncModbusTcpClient]:
    client = AsyncModbusTcpClient("127.0.0.1", port=server.port, timeout=1, retries=0)
    assert await client.connect()
    yield client
    client.close()


async def test_pymodbus_reads_every_unit_on_one_endpoint(
    client: AsyncModbusTcpClient, devices: dict[str, SimulatedDevice]
) -> None:
    devices["dixell"].set("air_temp", 15.3)
    result = await client.read_holding_registers(256, count=1, device_id=2)
    assert not result.isError() and result.registers == [153]

    result = await client.read_input_registers(0, count=6, device_id=1)
    assert result.registers == [1, 0x12, 0x12, 0x12, 0x12, 0]  # in_use, four healthy ESC/POS bytes, no bill event

    result = await client.read_holding_registers(2529, count=3, device_id=3)
    assert result.registers[1] == devices["danfoss"].raw("air_off_temp")[0]
    result = await client.read_holding_registers(2006, count=1, device_id=3)
    assert result.registers == [0]  # u00 normal: the compressor starts out running

    result = await client.read_discrete_inputs(512, count=1, device_id=2)
    assert not result.isError()


async def test_pymodbus_sees_the_device_exceptions(client: AsyncModbusTcpClient) -> None:
    unmapped = await client.read_holding_registers(300, count=1, device_id=2)
    assert unmapped.isError() and unmapped.exception_code == 0x02
    too_long = await client.read_holding_registers(256, count=2, device_id=2)
    assert too_long.isError() and too_long.exception_code == 0x03
    no_such_unit = await client.read_holding_registers(256, count=1, device_id=9)
    assert no_such_unit.isError() and no_such_unit.exception_code == 0x0B


async def test_pymodbus_writes_the_setpoint(client: AsyncModbusTcpClient, devices: dict[str, SimulatedDevice]) -> None:
    result = await client.write_register(886, 45, device_id=2)
    assert not result.isError()
    assert devices["dixell"].get("setpoint") == 4.5
    refused = await client.write_register(256, 1, device_id=2)
    assert refused.isError() and refused.exception_code == 0x02


async def test_pymodbus_sees_injected_faults(client: AsyncModbusTcpClient, devices: dict[str, SimulatedDevice]) -> None:
    devices["lane"].faults.inject("exception", now=0, code=0x06)
    busy = await client.read_input_registers(0, count=1, device_id=1)
    assert busy.isError() and busy.exception_code == 0x06
    devices["lane"].faults.clear("exception")
    assert not (await client.read_input_registers(0, count=1, device_id=1)).isError()


async def _exchange(port: int, frame: bytes, expect: int, timeout: float = 0.3) -> bytes:
    """Send one frame on a raw socket; return whatever arrives within `timeout` (up to `expect` bytes)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(frame)
        await writer.drain()
        data = b""
        try:
            async with asyncio.timeout(timeout):
                while len(data) < expect:
                    chunk = await reader.read(expect - len(data))
                    if not chunk:
                        break
                    data += chunk
        except TimeoutError:
            pass
        return data
    finally:
        writer.close()
        await writer.wait_closed()


READ_AIR = tcp.encode_frame(0x1234, 2, build_read_request(Table.HOLDING, 256, 1))


async def test_framing_faults_on_the_wire(server: ModbusTcpServer, devices: dict[str, SimulatedDevice]) -> None:
    dixell = devices["dixell"]
    dixell.set("air_temp", 15.3)
    healthy = tcp.encode_frame(0x1234, 2, bytes.fromhex("03020099"))
    assert await _exchange(server.port, READ_AIR, len(healthy)) == healthy

    dixell.faults.inject("garbage", now=0)
    assert await _exchange(server.port, READ_AIR, len(healthy)) == healthy[:2] + b"\xde\xad" + healthy[4:]
    dixell.faults.clear("garbage")

    dixell.faults.inject("truncated", now=0)
    assert await _exchange(server.port, READ_AIR, len(healthy)) == healthy[: len(healthy) // 2]
    dixell.faults.clear("truncated")

    dixell.faults.inject("wrong_unit", now=0)
    assert await _exchange(server.port, READ_AIR, len(healthy)) == tcp.encode_frame(
        0x1234, 3, bytes.fromhex("03020099")
    )
    dixell.faults.clear("wrong_unit")

    dixell.faults.inject("offline", now=0)
    assert await _exchange(server.port, READ_AIR, len(healthy)) == b""
    assert server.stats.silent == 1


async def test_a_bad_mbap_header_closes_the_connection(server: ModbusTcpServer) -> None:
    bad = READ_AIR[:2] + b"\x00\x07" + READ_AIR[4:]  # protocol id 7
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    writer.write(bad)
    await writer.drain()
    async with asyncio.timeout(2):
        assert await reader.read(100) == b""  # closed by the server
    writer.close()
    assert server.stats.bad_frames == 1


async def test_exit_closes_open_connections(devices: dict[str, SimulatedDevice]) -> None:
    async with ModbusTcpServer(devices.values()) as server:
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(READ_AIR)
        await reader.readexactly(11)
    async with asyncio.timeout(2):
        assert await reader.read(100) == b""
    writer.close()


async def test_a_busy_port_is_a_clear_error(server: ModbusTcpServer, devices: dict[str, SimulatedDevice]) -> None:
    with pytest.raises(SimulatorError, match=r"cannot serve Modbus TCP on 127\.0\.0\.1:"):
        async with ModbusTcpServer(devices.values(), port=server.port):
            pass
