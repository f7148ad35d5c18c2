"""`python -m gateway` killed with a fault open, restarted after the fault went away: central
receives the clear (rule state survives a restart), and no second raise."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import yaml
from pymodbus.server import ModbusTcpServer
from pymodbus.simulator import DataType, SimData, SimDevice

from protocols.mqtt.messages import FaultEvent
from tests.integration.gateway.helpers import Central, eventually
from tests.support.services import MosquittoProcess, free_port

pytestmark = pytest.mark.mosquitto

ROOT = Path(__file__).resolve().parents[3]

logging.getLogger("pymodbus").setLevel(logging.CRITICAL)


def xr75cx(unit: int, air_tenths: int) -> SimDevice:
    """The registers of a Dixell XR75CX that the edge reads (device_profiles/profiles/dixell-xr75cx.yaml)."""
    return SimDevice(
        id=unit,
        simdata=(
            [SimData(0, values=[False], datatype=DataType.BITS)],
            [SimData(512, values=[True, False], datatype=DataType.BITS)],
            [SimData(256, values=[air_tenths, 0], datatype=DataType.REGISTERS),
             SimData(886, values=[30], datatype=DataType.REGISTERS),
             SimData(3328, values=[0, 0], datatype=DataType.REGISTERS)],
            [SimData(0, values=[0], datatype=DataType.REGISTERS)],
        ),
    )


@contextlib.asynccontextmanager
async def modbus_server(port: int, *devices: SimDevice) -> AsyncIterator[None]:
    server = ModbusTcpServer(list(devices), address=("127.0.0.1", port))
    await server.serve_forever(background=True)
    try:
        yield
    finally:
        await server.shutdown()


@contextlib.asynccontextmanager
async def gateway_process(config: Path, log: Path) -> AsyncIterator[asyncio.subprocess.Process]:
    with log.open("ab") as out:
        proc = await asyncio.create_subprocess_exec(sys.executable, "-m", "gateway", str(config), cwd=ROOT,
                                                    stdout=out, stderr=out)
    try:
        yield proc
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGKILL)  # the crash under test, and the cleanup
            await proc.wait()


def faults(central: Central) -> list[tuple[str, str, str]]:
    """Each fault event once (a row unacknowledged at the kill is sent again, same message id)."""
    found = {m.message_id: m for m in (r.message() for r in central.received("fault")) if isinstance(m, FaultEvent)}
    return [(f.device_id, f.fault_code, f.state.value) for f in found.values()]


async def test_faults_that_went_away_while_the_gateway_was_dead_are_cleared_on_restart(
    tmp_path: Path, mosquitto: MosquittoProcess
) -> None:
    port = free_port()
    config = tmp_path / "store.yaml"
    config.write_text(yaml.safe_dump({
        "store_id": "store-011",
        "name": "Quay Lane",
        "mqtt": {"url": mosquitto.url, "reconnect_min_s": 0.2, "reconnect_max_s": 1},
        "outbox": {"path": str(tmp_path / "store.db")},
        "http": {"host": "127.0.0.1", "port": 0},
        "buses": [{
            "name": "cases", "transport": "tcp", "host": "127.0.0.1", "tcp_port": port, "poll_interval_s": 0.5,
            "devices": [{"id": "case-01", "unit": 1, "profile": "dixell-xr75cx",
                         "rules": {"high_temperature": {"delay_s": 0}}},
                        {"id": "case-02", "unit": 2, "profile": "dixell-xr75cx"}],
        }],
    }))
    log = tmp_path / "gateway.log"
    raised = [("case-01", "high_temperature", "raised"), ("case-02", "device_offline", "raised")]
    cleared = [("case-01", "high_temperature", "cleared"), ("case-02", "device_offline", "cleared")]
    with Central(mosquitto.url, subscribe="storeguard/v1/store-011/fault") as central:
        async with modbus_server(port, xr75cx(1, 100)):  # case-01 at 10 °C; case-02 does not answer
            async with gateway_process(config, log):
                await eventually(lambda: sorted(faults(central)) == raised, timeout=20,
                                 what=f"both faults raised (got {faults(central)}; log in {log})")
            # killed -9 with both faults open; meanwhile the case cools and case-02 comes back
        async with modbus_server(port, xr75cx(1, 40), xr75cx(2, 40)):
            async with gateway_process(config, log):
                await eventually(lambda: sorted(faults(central)[2:]) == cleared, timeout=20,
                                 what=f"both faults cleared after the restart (got {faults(central)}; log in {log})")
                await asyncio.sleep(0.6)  # another poll cycle: nothing else is reported
    assert sorted(faults(central)[:2]) == raised and sorted(faults(central)[2:]) == cleared
