"""Simulated serial peripherals: config specs, fault effects on the byte-exact devices, control API."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from device_profiles import ProfileRegistry
from protocols.cctalk import BillEventCode, build_read_buffered_bill_events, parse_buffered_events
from protocols.escpos import StatusKind, build_status_request
from simulators.config import CcTalkBusSpec, SimulatorConfig
from simulators.control import create_control_app
from simulators.errors import FaultError, SimulatorConfigError
from simulators.peripherals.fleet import PeripheralFleet, PeripheralLine
from simulators.simulation import Simulation
from tests.unit.simulators.helpers import config as modbus_config

Client = TestClient[web.Request, web.Application]


def raw_config(**extra: Any) -> dict[str, Any]:
    return {
        "buses": [
            {"name": "printer-1", "transport": "escpos", "link": "/tmp/unused-p",
             "devices": [{"id": "printer-01", "profile": "epson-tm-t88-escpos"}]},
            {"name": "bills-1", "transport": "cctalk", "link": "/tmp/unused-b", "echo": True,
             "devices": [{"id": "bill-01", "unit": 40, "profile": "generic-cctalk-bill-validator"}]},
        ],
        **extra,
    }  # fmt: skip


def test_peripheral_buses_parse_and_stay_out_of_the_modbus_devices(registry: ProfileRegistry) -> None:
    scenario = [{"at_s": 1, "device": "printer-01", "fault": "paper_end"},
                {"at_s": 2, "device": "bill-01", "fault": "bill_jam"}]  # fmt: skip
    config = SimulatorConfig.parse(raw_config(scenario=scenario), "/etc/sim.yaml", registry=registry)
    assert list(config.device_specs()) == []
    assert [s.id for _, s in config.peripheral_specs()] == ["printer-01", "bill-01"]
    assert isinstance(config.buses[1], CcTalkBusSpec) and config.buses[1].echo


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"scenario": [{"at_s": 1, "device": "printer-01", "fault": "bill_jam"}]}, "does not apply to a printer"),
        ({"scenario": [{"at_s": 1, "device": "bill-01", "fault": "garbage"}]}, "does not apply to a bill_validator"),
    ],
)
def test_peripheral_faults_are_checked_per_kind(registry: ProfileRegistry, change: dict[str, Any], message: str) -> None:
    with pytest.raises(SimulatorConfigError, match=message):
        SimulatorConfig.parse(raw_config(**change), "/etc/sim.yaml", registry=registry)


def test_profile_must_speak_the_bus_protocol(registry: ProfileRegistry) -> None:
    raw = raw_config()
    raw["buses"][0]["devices"][0]["profile"] = "dixell-xr75cx"
    with pytest.raises(SimulatorConfigError, match="speaks modbus, not escpos"):
        SimulatorConfig.parse(raw, "/etc/sim.yaml", registry=registry)
    raw = modbus_config().model_dump(mode="json")
    raw["buses"][0]["devices"][0] = {"id": "case-01", "unit": 1, "profile": "epson-tm-t88-escpos"}
    raw["scenario"] = []
    with pytest.raises(SimulatorConfigError, match="speaks escpos, not modbus"):
        SimulatorConfig.parse(raw, "/etc/sim.yaml", registry=registry)


def test_printer_faults_set_and_clear_the_status_bytes() -> None:
    now = [0.0]
    fleet = PeripheralFleet(clock=lambda: now[0])
    entry = fleet.add("printer-01", bus="p", unit=1, profile="epson-tm-t88-escpos", kind="printer")
    request = b"".join(build_status_request(n) for n in StatusKind)
    fleet.inject("printer-01", "paper_near_end")
    fleet.inject("printer-01", "cover_open", duration_s=5)
    assert entry.handle(request) == bytes([0x1A, 0x16, 0x12, 0x1E])  # offline, cover open, -, near end
    now[0] = 6.0
    fleet.tick()
    assert entry.handle(request) == bytes([0x12, 0x12, 0x12, 0x1E])
    assert fleet.clear("printer-01", "paper_near_end") and not fleet.clear("printer-01", "paper_near_end")
    fleet.inject("printer-01", "offline")
    assert entry.handle(request) == b""
    with pytest.raises(FaultError):
        fleet.inject("printer-01", "bill_jam")


def test_validator_faults_are_events_and_their_clears_report_it_over() -> None:
    fleet = PeripheralFleet()
    entry = fleet.add("bill-01", bus="b", unit=40, profile="generic-cctalk-bill-validator", kind="bill_validator")
    line = PeripheralLine([entry])

    def events() -> list[int]:
        reply = parse_buffered_events(line.handle(build_read_buffered_bill_events(40)), device=40)
        return [reply.counter, *(r.b for r in reply.results[:2])]

    fleet.inject("bill-01", "stacker_full")
    fleet.inject("bill-01", "bill_jam")
    assert events() == [2, BillEventCode.UNSAFE_JAM, BillEventCode.STACKER_FULL]
    fleet.clear("bill-01", "bill_jam")  # reset, then the still-full stacker is reported again
    assert events() == [1, BillEventCode.STACKER_FULL, 0]
    fleet.clear("bill-01", "stacker_full")
    assert events() == [2, BillEventCode.STACKER_REMOVED, BillEventCode.STACKER_FULL]


@pytest.fixture
async def client(registry: ProfileRegistry) -> AsyncIterator[Client]:
    fleet = PeripheralFleet()
    fleet.add("printer-01", bus="p", unit=1, profile="epson-tm-t88-escpos", kind="printer")
    simulation = Simulation.from_config(modbus_config(), registry)
    async with TestClient(TestServer(create_control_app(simulation, fleet))) as client:
        yield client


async def test_control_api_drives_peripherals(client: Client) -> None:
    devices = await (await client.get("/devices")).json()
    assert devices[-1]["id"] == "printer-01" and devices[-1]["kind"] == "printer"
    response = await client.post("/devices/printer-01/faults", json={"fault": "paper_end"})
    assert response.status == 201
    assert (await response.json())["points"]["paper_end"] is True
    assert (await client.post("/devices/printer-01/faults", json={"fault": "stacker_full"})).status == 422
    assert (await client.delete("/devices/printer-01/faults/paper_end")).status == 200
    assert (await client.delete("/devices/printer-01/faults/paper_end")).status == 404
    body = await (await client.get("/devices/printer-01")).json()
    assert body["points"]["paper_end"] is False and body["faults"] == []
