"""The in-process simulation: building from config, injected clock, fault expiry, state."""

from __future__ import annotations

import pytest

from device_profiles import ProfileRegistry
from protocols.modbus import Table, build_read_request
from simulators.errors import FaultError, UnknownDeviceError
from simulators.simulation import Simulation
from tests.unit.simulators.helpers import config


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def simulation(registry: ProfileRegistry, clock: FakeClock) -> Simulation:
    return Simulation.from_config(config(), registry, clock=clock)


def test_devices_are_built_from_the_config(simulation: Simulation) -> None:
    assert [d.device_id for d in simulation.devices("rs485-1")] == ["case-01", "case-02"]
    case = simulation.device("case-01")
    assert case.get("setpoint") == 4.0
    assert case.get("machine_on") is True  # an initial value for a point no model writes
    assert simulation.device("case-02").get("setpoint") == 3.0  # the model's default


def test_tick_advances_models_by_real_time_times_scale(simulation: Simulation, clock: FakeClock) -> None:
    clock.now += 0.5
    assert simulation.tick() == pytest.approx(30.0)
    clock.now += 2.0
    assert simulation.tick() == pytest.approx(120.0)
    assert simulation.simulated_s == pytest.approx(150.0)


def test_injected_fault_shows_at_once_and_expires_on_the_real_clock(simulation: Simulation, clock: FakeClock) -> None:
    active = simulation.inject("case-02", "door_open", 60)
    assert active.until == clock.now + 60
    device = simulation.device("case-02")
    assert device.get("u00_state") == "door_open"  # published without waiting for a tick
    clock.now += 59
    simulation.tick()
    assert [f.fault for f in simulation.state("case-02").faults] == ["door_open"]
    assert simulation.state("case-02").faults[0].remaining_s == pytest.approx(1.0)
    clock.now += 1
    simulation.tick()
    assert simulation.state("case-02").faults == []
    assert device.get("u00_state") != "door_open"


def test_clear_restores_normal_behaviour(simulation: Simulation) -> None:
    simulation.inject("lane-01", "offline")
    request = build_read_request(Table.INPUT, 0, 1)
    assert simulation.device("lane-01").handle_pdu(request) is None
    assert simulation.clear("lane-01", "offline") is True
    assert simulation.clear("lane-01", "offline") is False
    assert simulation.device("lane-01").handle_pdu(request) is not None


def test_state_reports_points_faults_and_model(simulation: Simulation) -> None:
    simulation.inject("case-01", "exception", code=6)
    state = simulation.state("case-01")
    assert state.bus == "rs485-1" and state.unit == 1 and state.profile == "dixell-xr75cx"
    assert state.kind == "refrigeration_controller"
    assert state.points["setpoint"] == 4.0
    assert state.faults[0].fault == "exception" and state.faults[0].code == 6 and state.faults[0].remaining_s is None
    assert state.model["defrost_phase"] == "none"
    assert len(simulation.states()) == 3


def test_unknown_device_and_bad_fault(simulation: Simulation) -> None:
    with pytest.raises(UnknownDeviceError, match="case-99"):
        simulation.inject("case-99", "door_open")
    with pytest.raises(FaultError):
        simulation.inject("lane-01", "door_open")
