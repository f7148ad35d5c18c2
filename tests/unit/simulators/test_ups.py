"""The UPS model: on mains all is well; a mains failure drains the battery to low battery;
a worn battery flags RB and holds half the runtime; the edge's decoding reads it all back."""

from __future__ import annotations

import pytest
from aiohttp.test_utils import TestClient, TestServer

from device_profiles import ProfileRegistry
from edge.decode import decode_block
from edge.planner import plan_reads
from protocols.modbus import parse_read_response
from simulators.config import SimulatorConfig
from simulators.control import create_control_app
from simulators.device import SimulatedDevice
from simulators.errors import FaultError
from simulators.faults import Fault
from simulators.simulation import Simulation
from simulators.ups import UpsModel, UpsParams


@pytest.fixture
def ups(registry: ProfileRegistry) -> SimulatedDevice:
    return SimulatedDevice("ups-1", 1, registry.get("apc-smart-ups-nmc2"))


def test_on_mains_the_ups_reports_on_line_and_a_full_battery(ups: SimulatedDevice) -> None:
    model = UpsModel(ups)
    model.step(600)
    assert ups.get("mains_power") is True and ups.get("on_battery") is False
    assert ups.get("low_battery") is False and ups.get("replace_battery") is False and ups.get("overload") is False
    assert ups.get("battery_charge") == 100 and ups.get("runtime_left") == 30 and ups.get("load") == 40


def test_mains_lost_drains_the_battery_to_low_battery(ups: SimulatedDevice) -> None:
    model = UpsModel(ups, UpsParams(runtime_full_min=30, low_battery_runtime_min=2))
    ups.faults.inject(Fault.ON_BATTERY, now=0.0)
    model.step(0)
    assert ups.get("on_battery") is True and ups.get("mains_power") is False
    model.step(15 * 60)  # half the runtime
    assert ups.get("battery_charge") == 50 and ups.get("runtime_left") == 15
    assert ups.get("low_battery") is False
    model.step(13 * 60)
    assert ups.get("runtime_left") == 2 and ups.get("low_battery") is True
    model.step(60 * 60)
    assert ups.get("battery_charge") == 0 and ups.get("runtime_left") == 0  # stays empty
    ups.faults.clear(Fault.ON_BATTERY)  # mains back: recharging, flags gone
    model.step(20 * 60)
    assert ups.get("on_battery") is False and ups.get("low_battery") is False
    assert ups.get("battery_charge") == 10  # 0.5 %/min
    assert model.snapshot()["charge_pct"] == pytest.approx(10.0)


def test_a_worn_battery_flags_replace_and_holds_half_the_runtime(ups: SimulatedDevice) -> None:
    model = UpsModel(ups)
    ups.faults.inject(Fault.REPLACE_BATTERY, now=0.0)
    model.step(0)
    assert ups.get("replace_battery") is True and ups.get("runtime_left") == 15
    ups.faults.inject(Fault.ON_BATTERY, now=0.0)
    model.step(7.5 * 60)
    assert ups.get("battery_charge") == 50


def test_overload_raises_the_load_and_shortens_the_runtime(ups: SimulatedDevice) -> None:
    model = UpsModel(ups)
    ups.faults.inject(Fault.UPS_OVERLOAD, now=0.0)
    model.step(0)
    assert ups.get("overload") is True and ups.get("load") == 115
    assert ups.get("runtime_left") == round(30 * 40 / 115)


def test_ups_faults_apply_to_upss_only(ups: SimulatedDevice, registry: ProfileRegistry) -> None:
    case = SimulatedDevice("case-1", 1, registry.get("dixell-xr75cx"))
    with pytest.raises(FaultError):
        case.faults.inject(Fault.ON_BATTERY, now=0.0)
    ups.faults.inject(Fault.OFFLINE, now=0.0)  # the transport faults still apply


def test_the_edge_decodes_what_the_model_writes(ups: SimulatedDevice) -> None:
    model = UpsModel(ups)
    ups.faults.inject(Fault.ON_BATTERY, now=0.0)
    model.step(10 * 60)
    readings = {}
    for block in plan_reads(ups.profile.points, ups.profile.modbus):
        response = ups.handle_pdu(block.request_pdu())
        assert response is not None
        values = parse_read_response(block.table, block.count, response)
        readings.update((r.point, r.value) for r in decode_block(block, values))
    assert readings["on_battery"] is True and readings["mains_power"] is False
    assert readings["battery_charge"] == 67 and readings["runtime_left"] == 20


def test_the_simulation_gives_a_ups_its_model_and_scenario_faults(registry: ProfileRegistry) -> None:
    config = SimulatorConfig.model_validate({
        "time_scale": 60,
        "buses": [{"name": "ups", "transport": "tcp", "devices": [
            {"id": "ups-1", "unit": 1, "profile": "apc-smart-ups-nmc2", "ups": {"runtime_full_min": 10}}]}],
        "scenario": [{"at_s": 5, "device": "ups-1", "fault": "on_battery", "duration_s": 60}],
    })
    config.check_profiles(registry)
    simulation = Simulation.from_config(config, registry, clock=lambda: 0.0)
    assert isinstance(simulation.model("ups-1"), UpsModel)
    simulation.inject("ups-1", "on_battery")
    simulation.advance(5 * 60)
    state = simulation.state("ups-1")
    assert state.points["on_battery"] is True and state.points["battery_charge"] == 50
    assert state.model["on_battery"] is True
    bad = config.model_copy(update={"buses": [config.buses[0].model_copy(update={"devices": [
        config.buses[0].devices[0].model_copy(update={"profile": "dixell-xr75cx"})]})]})
    with pytest.raises(ValueError, match="ups: applies to UPSs only"):
        bad.check_profiles(registry)


async def test_the_control_api_takes_the_ups_faults(registry: ProfileRegistry) -> None:
    config = SimulatorConfig.model_validate({"buses": [{"name": "ups", "transport": "tcp", "devices": [
        {"id": "ups-1", "unit": 1, "profile": "apc-smart-ups-nmc2"}]}]})
    simulation = Simulation.from_config(config, registry)
    async with TestClient(TestServer(create_control_app(simulation))) as client:
        response = await client.post("/devices/ups-1/faults", json={"fault": "on_battery"})
        assert response.status == 201
        body = await response.json()
        assert body["points"]["on_battery"] is True and body["points"]["mains_power"] is False
        assert body["model"]["on_battery"] is True
        response = await client.post("/devices/ups-1/faults", json={"fault": "replace_battery"})
        assert response.status == 201 and (await response.json())["points"]["replace_battery"] is True
        response = await client.post("/devices/ups-1/faults", json={"fault": "door_open"})
        assert response.status == 422
