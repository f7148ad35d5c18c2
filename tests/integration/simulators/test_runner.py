"""run_simulators end to end: both transports, the control API, the scenario and clean-up."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
import serial
from pymodbus.client import AsyncModbusTcpClient

from protocols.modbus import Table, build_read_request, rtu
from simulators.config import SimulatorConfig
from simulators.runner import Simulators, run_simulators

CONFIG = """\
time_scale: 600
tick_s: 0.05
control: {host: 127.0.0.1, port: 0}
buses:
  - name: rs485-1
    transport: rtu
    link: run/ttyCASES
    devices:
      - {id: case-01, unit: 1, profile: dixell-xr75cx, setpoint: 3.0}
      - {id: case-02, unit: 2, profile: danfoss-ak-cc55, setpoint: 2.0}
  - name: lanes
    transport: tcp
    port: 0
    devices:
      - {id: lane-01, unit: 1, profile: storeguard-sco-lane}
scenario:
  - {at_s: 0.2, device: lane-01, fault: paper_near_end, duration_s: 0.4}
"""


@pytest.fixture
async def running(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> AsyncIterator[Simulators]:
    (tmp_path / "sim.yaml").write_text(CONFIG, encoding="utf-8")
    config = SimulatorConfig.load(tmp_path / "sim.yaml")
    ready = asyncio.Event()
    handles: list[Simulators] = []
    caplog.set_level(logging.INFO, logger="simulators")
    task = asyncio.create_task(run_simulators(config, ready=ready, on_ready=handles.append))
    async with asyncio.timeout(5):
        await ready.wait()
    yield handles[0]
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


def read_rtu(link: Path, unit: int, address: int) -> bytes:
    with serial.Serial(str(link), baudrate=9600, timeout=0.5) as port:
        port.write(rtu.encode_frame(unit, build_read_request(Table.HOLDING, address, 1)))
        return bytes(port.read(7))


async def test_ready_means_listening_and_logged(
    running: Simulators, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    link = running.rtu_link("rs485-1")
    assert link == tmp_path / "run" / "ttyCASES" and link.is_symlink()
    assert running.tcp_port("lanes") > 0 and running.control_url is not None
    messages = [r.getMessage() for r in caplog.get_records("setup")]  # logged while the fixture started it
    assert any("rs485-1" in m and "ttyCASES" in m for m in messages)
    assert any("lanes" in m and f":{running.tcp_port('lanes')}" in m for m in messages)


async def test_models_tick_and_answer_on_both_transports(running: Simulators) -> None:
    link = running.rtu_link("rs485-1")
    await asyncio.sleep(0.3)  # a few ticks = minutes of simulated time
    assert running.simulation is not None and running.simulation.simulated_s > 60
    unit, pdu = rtu.decode_frame(await asyncio.to_thread(read_rtu, link, 1, 886))
    assert (unit, pdu) == (1, bytes.fromhex("0302001E"))  # Dixell setpoint 3.0
    client = AsyncModbusTcpClient("127.0.0.1", port=running.tcp_port("lanes"), timeout=1, retries=0)
    await client.connect()
    try:
        result = await client.read_input_registers(1, count=4, device_id=1)
        assert result.registers[:3] == [0x12, 0x12, 0x12]
    finally:
        client.close()


async def test_control_api_injects_what_modbus_then_shows(running: Simulators) -> None:
    link = running.rtu_link("rs485-1")
    async with aiohttp.ClientSession(running.control_url) as http:
        response = await http.post("/devices/case-01/faults", json={"fault": "door_open", "duration_s": 30})
        assert response.status == 201
        frame = await asyncio.to_thread(read_rtu, link, 1, 3328)
        assert rtu.decode_frame(frame) == (1, bytes.fromhex("03020800"))  # Alarms I, door bit 11
        devices = {d["id"]: d for d in await (await http.get("/devices")).json()}
        assert [f["fault"] for f in devices["case-01"]["faults"]] == ["door_open"]
        assert devices["case-01"]["points"]["door_alarm"] is True

        assert (await http.post("/devices/case-02/faults", json={"fault": "offline"})).status == 201
        assert await asyncio.to_thread(read_rtu, link, 2, 2006) == b""
        assert (await http.delete("/devices/case-02/faults/offline")).status == 200
        assert len(await asyncio.to_thread(read_rtu, link, 2, 2006)) == 7

        assert (await http.delete("/devices/case-01/faults/door_open")).status == 200
        frame = await asyncio.to_thread(read_rtu, link, 1, 3328)
        assert rtu.decode_frame(frame) == (1, bytes.fromhex("03020000"))


async def test_in_process_inject_and_clear(running: Simulators) -> None:
    running.inject("lane-01", "exception", code=0x04)
    client = AsyncModbusTcpClient("127.0.0.1", port=running.tcp_port("lanes"), timeout=1, retries=0)
    await client.connect()
    try:
        assert (await client.read_input_registers(0, count=1, device_id=1)).exception_code == 0x04
        assert running.clear("lane-01", "exception")
        assert not (await client.read_input_registers(0, count=1, device_id=1)).isError()
    finally:
        client.close()


async def test_the_scenario_plays_and_its_faults_expire(running: Simulators) -> None:
    assert running.simulation is not None
    lane = running.simulation.device("lane-01")
    seen = []
    for _ in range(20):
        await asyncio.sleep(0.05)
        seen.append(lane.get("paper_near_end"))
    assert seen[0] is False and True in seen  # injected at 0.2 s
    await asyncio.sleep(0.5)
    assert lane.get("paper_near_end") is False  # expired after 0.4 s
    assert lane.read(Table.INPUT, 4, 1) == [0x12]


async def test_cancelling_removes_the_links(tmp_path: Path) -> None:
    (tmp_path / "sim.yaml").write_text(CONFIG, encoding="utf-8")
    config = SimulatorConfig.load(tmp_path / "sim.yaml")
    ready = asyncio.Event()
    task = asyncio.create_task(run_simulators(config, ready=ready))
    await ready.wait()
    link = tmp_path / "run" / "ttyCASES"
    assert link.is_symlink()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert not link.is_symlink()
