"""The Modbus RTU server on a pty, answered byte-exactly to pyserial opening the symlinked port."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import serial

from device_profiles import ProfileRegistry
from protocols.modbus import CrcError, Table, build_read_request, build_write_single_request, rtu
from simulators.device import SimulatedDevice
from simulators.errors import SimulatorError
from simulators.rtu_server import ModbusRtuServer

READ_AIR = rtu.encode_frame(1, build_read_request(Table.HOLDING, 256, 1))
AIR_15_3 = bytes.fromhex("0103020099782E")  # unit 1, FC03, 2 bytes, 0x0099 = 153, CRC


@pytest.fixture(scope="module")
def registry() -> ProfileRegistry:
    return ProfileRegistry.load()


@pytest.fixture
def dixell(registry: ProfileRegistry) -> SimulatedDevice:
    device = SimulatedDevice("case-01", 1, registry.get("dixell-xr75cx"))
    device.set("air_temp", 15.3)
    return device


@pytest.fixture
def danfoss(registry: ProfileRegistry) -> SimulatedDevice:
    return SimulatedDevice("case-02", 2, registry.get("danfoss-ak-cc55"))


@pytest.fixture
async def server(tmp_path: Path, dixell: SimulatedDevice, danfoss: SimulatedDevice) -> AsyncIterator[ModbusRtuServer]:
    async with ModbusRtuServer([dixell, danfoss], link=tmp_path / "dev" / "ttyCASES", baudrate=9600) as server:
        yield server


def transact(link: Path, *frames: bytes, expect: int = 256, timeout: float = 0.3, pause: float = 0.0) -> bytes:
    """Write each frame through pyserial (as an edge would) and collect the answers until quiet."""
    with serial.Serial(str(link), baudrate=9600, timeout=timeout) as port:
        for frame in frames:
            port.write(frame)
            port.flush()
            time.sleep(pause)
        return bytes(port.read(expect))


async def exchange(link: Path, *frames: bytes, expect: int = 256, timeout: float = 0.3, pause: float = 0.0) -> bytes:
    return await asyncio.to_thread(transact, link, *frames, expect=expect, timeout=timeout, pause=pause)


async def test_link_points_at_the_pty_and_goes_on_exit(tmp_path: Path, dixell: SimulatedDevice) -> None:
    link = tmp_path / "ttyX"
    async with ModbusRtuServer([dixell], link=link) as server:
        assert link.is_symlink() and os.readlink(link) == server.slave_name
        assert server.slave_name.startswith("/dev/pts/")
    assert not link.exists() and not link.is_symlink()


async def test_a_stale_link_is_replaced_but_a_file_is_not(tmp_path: Path, dixell: SimulatedDevice) -> None:
    link = tmp_path / "ttyX"
    link.symlink_to("/dev/nonexistent")
    async with ModbusRtuServer([dixell], link=link) as server:
        assert os.readlink(link) == server.slave_name
    link.write_text("not a tty")
    with pytest.raises(SimulatorError, match="not a symlink"):
        async with ModbusRtuServer([dixell], link=link):
            pass


async def test_read_is_answered_byte_exactly(server: ModbusRtuServer) -> None:
    assert bytes.fromhex("01030100000185F6") == READ_AIR
    assert await exchange(server.link, READ_AIR, expect=7) == AIR_15_3


async def test_second_unit_on_the_same_bus(server: ModbusRtuServer, danfoss: SimulatedDevice) -> None:
    danfoss.set("u00_state", "defrost")
    answer = await exchange(server.link, rtu.encode_frame(2, build_read_request(Table.HOLDING, 2006, 1)), expect=7)
    assert rtu.decode_frame(answer) == (2, bytes.fromhex("0302000E"))


async def test_bad_crc_gets_no_answer_and_the_line_recovers(server: ModbusRtuServer) -> None:
    bad = READ_AIR[:-1] + bytes([READ_AIR[-1] ^ 0xFF])
    assert await exchange(server.link, bad) == b""
    assert server.stats.crc_errors == 1
    assert await exchange(server.link, READ_AIR, expect=7) == AIR_15_3


async def test_frames_for_other_units_are_ignored(server: ModbusRtuServer) -> None:
    other = rtu.encode_frame(7, build_read_request(Table.HOLDING, 256, 1))
    assert await exchange(server.link, other) == b""
    assert server.stats.other_unit == 1


async def test_exceptions_on_the_wire(server: ModbusRtuServer) -> None:
    unmapped = rtu.encode_frame(1, build_read_request(Table.HOLDING, 300, 1))
    assert await exchange(server.link, unmapped, expect=5) == rtu.encode_frame(1, bytes.fromhex("8302"))
    # A function the slave cannot size is framed by the silence after it: illegal function.
    unknown = rtu.encode_frame(1, bytes.fromhex("2B0E0100"))
    assert await exchange(server.link, unknown, expect=5) == rtu.encode_frame(1, bytes.fromhex("AB01"))


async def test_write_and_broadcast(server: ModbusRtuServer, dixell: SimulatedDevice) -> None:
    write = rtu.encode_frame(1, build_write_single_request(Table.HOLDING, 886, 45))
    assert write == bytes.fromhex("01060376002DA849")
    assert await exchange(server.link, write, expect=8) == write  # FC06 echoes
    assert dixell.get("setpoint") == 4.5
    broadcast = rtu.encode_frame(0, build_write_single_request(Table.HOLDING, 886, 30))
    assert await exchange(server.link, broadcast) == b""  # nobody answers a broadcast
    assert dixell.get("setpoint") == 3.0


async def test_transport_faults(server: ModbusRtuServer, dixell: SimulatedDevice) -> None:
    dixell.faults.inject("garbage", now=0)
    garbage = await exchange(server.link, READ_AIR, expect=7)
    assert garbage[:5] == AIR_15_3[:5] and len(garbage) == 7
    with pytest.raises(CrcError):
        rtu.decode_frame(garbage)
    dixell.faults.clear("garbage")

    dixell.faults.inject("truncated", now=0)
    assert await exchange(server.link, READ_AIR) == AIR_15_3[:3]
    dixell.faults.clear("truncated")

    dixell.faults.inject("wrong_unit", now=0)
    assert rtu.decode_frame(await exchange(server.link, READ_AIR, expect=7)) == (2, bytes.fromhex("03020099"))
    dixell.faults.clear("wrong_unit")

    for code in (0x04, 0x06):
        dixell.faults.inject("exception", now=0, code=code)
        assert await exchange(server.link, READ_AIR, expect=5) == rtu.encode_frame(1, bytes([0x83, code]))
    dixell.faults.clear("exception")

    dixell.faults.inject("offline", now=0)
    assert await exchange(server.link, READ_AIR) == b""
    dixell.faults.clear("offline")
    assert await exchange(server.link, READ_AIR, expect=7) == AIR_15_3


async def test_wire_timing_takes_the_time_of_the_real_bus(tmp_path: Path, dixell: SimulatedDevice) -> None:
    baud, turnaround = 1200, 0.010
    expected = rtu.wire_time(8, baud) + rtu.t35(baud) + turnaround + rtu.wire_time(7, baud)  # ~178 ms
    async with ModbusRtuServer(
        [dixell], link=tmp_path / "tty", baudrate=baud, wire_timing=True, turnaround_s=turnaround
    ) as server:
        started = time.monotonic()
        assert await exchange(server.link, READ_AIR, expect=7, timeout=2) == AIR_15_3
        elapsed = time.monotonic() - started
        assert expected <= elapsed < expected + 0.5
        await asyncio.sleep(2 * rtu.t35(baud))  # the master, too, keeps t3.5 of silence
        # A request sent while the slave is still answering collides with it: ignored, counted.
        answers = await exchange(server.link, READ_AIR, READ_AIR, expect=14, timeout=0.6, pause=0.03)
        assert answers == AIR_15_3
        assert server.stats.garbled == 1
