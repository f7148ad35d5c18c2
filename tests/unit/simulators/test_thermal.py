"""The refrigerated-case model, stepped in simulated time, seen through both controllers' registers."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import TypeVar

import pytest

from device_profiles import ProfileRegistry
from protocols.modbus import Table, build_write_single_request
from simulators.device import SimulatedDevice
from simulators.faults import Fault
from simulators.thermal import RefrigerationModel, ThermalParams
from tests.unit.simulators.helpers import with_roles

NO_DEFROST = ThermalParams(first_defrost_s=10 * 24 * 3600)
HOUR = 3600.0
T = TypeVar("T")


def run(model: RefrigerationModel, seconds: float, watch: Callable[[], T], dt: float = 10.0) -> list[T]:
    """Step `seconds` in `dt` steps and return what `watch` saw after each step."""
    seen = []
    for _ in range(int(seconds / dt)):
        model.step(dt)
        seen.append(watch())
    return seen


def advance(model: RefrigerationModel, seconds: float) -> None:
    run(model, seconds, lambda: None)


def temp(device: SimulatedDevice, name: str) -> float:
    """A temperature point's value, which must be a number (not a sentinel)."""
    value = device.get(name)
    assert isinstance(value, float), f"{name} = {value!r}"
    return value


def start(device: SimulatedDevice, params: ThermalParams = NO_DEFROST, setpoint: float = 3.0) -> RefrigerationModel:
    model = RefrigerationModel(device, params, setpoint_c=setpoint)
    model.step(HOUR)  # settle
    return model


@pytest.mark.parametrize(
    ("fixture", "air", "relay"), [("dixell", "air_temp", None), ("danfoss", "air_off_temp", "cooling_relay")]
)
def test_air_cycles_with_the_compressor_around_setpoint(
    request: pytest.FixtureRequest, fixture: str, air: str, relay: str | None
) -> None:
    device: SimulatedDevice = request.getfixturevalue(fixture)
    model = start(device)
    assert device.get("setpoint") == 3.0
    states = run(
        model, 4 * HOUR, lambda: (temp(device, air), model.compressor_on, device.get(relay) if relay else None)
    )
    temps = [s[0] for s in states]
    assert 2.0 <= min(temps) <= 3.0 and 5.0 <= max(temps) <= 5.6  # cut-out 3.0, cut-in 3.0 + 2.0
    switches = sum(1 for a, b in itertools.pairwise(states) if a[1] != b[1])
    assert switches >= 16  # at least 8 full cycles in 4 h
    if relay:
        assert all(s[1] == s[2] for s in states)


def test_setpoint_written_over_modbus_moves_the_regulation(danfoss: SimulatedDevice) -> None:
    model = start(danfoss)
    danfoss.handle_pdu(build_write_single_request(Table.HOLDING, 99, 0xFFF6))  # r00 = -1.0 °C
    advance(model, 2 * HOUR)
    temps = run(model, 2 * HOUR, lambda: temp(danfoss, "air_off_temp"))
    assert min(temps) >= -1.5 and max(temps) <= 1.6


def test_door_open_warms_the_case_and_sets_the_controller_flags(
    dixell: SimulatedDevice, danfoss: SimulatedDevice
) -> None:
    params = NO_DEFROST.model_copy(update={"door_alarm_delay_s": 1800})
    cases = [(dixell, start(dixell, params), "air_temp"), (danfoss, start(danfoss, params), "air_off_temp")]
    for device, model, air in cases:
        device.faults.inject(Fault.DOOR_OPEN, now=0)
        advance(model, 1200)
        assert temp(device, air) > 8.0
    assert dixell.get("door_alarm") is True  # Dixell: door bit at once (Alarms I bit 11)
    assert danfoss.get("u00_state") == "door_open"  # Danfoss: u00 = 17
    assert danfoss.raw("u00_state") == [17]
    assert danfoss.get("alarm_door") is False  # A04 not yet elapsed
    advance(cases[1][1], 900)
    assert danfoss.get("alarm_door") is True
    for device, model, air in cases:
        device.faults.clear(Fault.DOOR_OPEN)
        advance(model, HOUR)
        assert temp(device, air) < 5.6
    assert dixell.get("door_alarm") is False
    assert danfoss.get("alarm_door") is False
    assert danfoss.get("u00_state") in ("normal", "thermostat_cut_out")


def test_compressor_dead_warms_the_case_and_trips_the_compressor_alarm(dixell: SimulatedDevice) -> None:
    model = start(dixell, NO_DEFROST.model_copy(update={"compressor_alarm_delay_s": 900}))
    dixell.faults.inject(Fault.COMPRESSOR_DEAD, now=0)
    advance(model, 600)
    assert dixell.get("high_pressure_alarm") is False  # not yet: the protection has a delay
    advance(model, HOUR)
    assert dixell.get("high_pressure_alarm") is True
    assert dixell.raw("high_pressure_alarm") == [0x0200]  # Alarms II, high byte bit 1
    assert temp(dixell, "air_temp") > 12.0
    assert model.compressor_on  # the controller keeps calling for cooling
    assert abs(model.evaporator_c - model.air_c) < 2.0  # no cooling: the coil sits at air temperature
    dixell.faults.clear(Fault.COMPRESSOR_DEAD)
    model.step(0)
    assert dixell.get("high_pressure_alarm") is False
    advance(model, 2 * HOUR)
    assert temp(dixell, "air_temp") < 5.6


def test_high_temperature_alarm_follows_the_controller_delay(danfoss: SimulatedDevice) -> None:
    model = start(danfoss, NO_DEFROST.model_copy(update={"high_alarm_delay_s": 1800}))
    danfoss.faults.inject(Fault.COMPRESSOR_DEAD, now=0)
    above = run(model, 2 * HOUR, lambda: (temp(danfoss, "air_off_temp") > 8.0, danfoss.get("alarm_high_temp")))
    first_above = next(i for i, (hot, _) in enumerate(above) if hot)
    first_alarm = next(i for i, (_, alarm) in enumerate(above) if alarm)
    assert first_alarm - first_above == pytest.approx(180, abs=2)  # 1800 s in 10 s steps
    danfoss.faults.clear(Fault.COMPRESSOR_DEAD)
    advance(model, 2 * HOUR)
    assert danfoss.get("alarm_high_temp") is False


def test_defrost_lifts_temperatures_and_sets_the_defrost_flags(
    dixell: SimulatedDevice, danfoss: SimulatedDevice
) -> None:
    params = ThermalParams(first_defrost_s=2 * HOUR)
    dixell_model, danfoss_model = RefrigerationModel(dixell, params), RefrigerationModel(danfoss, params)
    before = run(
        danfoss_model, 2 * HOUR - 60, lambda: (temp(danfoss, "air_off_temp"), temp(danfoss, "evaporator_temp"))
    )
    advance(dixell_model, 2 * HOUR - 60)
    assert dixell.get("defrost_active") is False and danfoss.get("defrost_relay") is False
    seen = run(
        danfoss_model,
        HOUR,
        lambda: (
            danfoss.get("u00_state"),
            temp(danfoss, "air_off_temp"),
            temp(danfoss, "evaporator_temp"),
            danfoss.get("defrost_relay"),
        ),
    )
    dixell_flags = run(dixell_model, HOUR, lambda: dixell.get("defrost_active"))
    states = [s[0] for s in seen]
    # heat -> drip -> fan delay (recovery) -> normal, in that order
    order = [s for i, s in enumerate(states) if i == 0 or states[i - 1] != s]
    assert order[order.index("defrost") :][:4] == ["defrost", "drip_off", "fan_delay", "normal"]
    assert all(s[3] == (s[0] == "defrost") for s in seen)  # relay on exactly while heating
    assert any(dixell_flags) and not dixell_flags[-1]
    assert max(s[1] for s in seen) > max(t for t, _ in before) + 1.5  # the air lifts
    assert max(s[2] for s in seen) >= params.defrost_end_c  # the coil reaches the end temperature
    assert danfoss.get("alarm_high_temp") is False  # suppressed during and after defrost


def test_probe_fault_reads_the_sentinel_and_runs_the_duty_cycle(
    dixell: SimulatedDevice, danfoss: SimulatedDevice
) -> None:
    dixell_model, danfoss_model = start(dixell), start(danfoss)
    dixell.faults.inject(Fault.PROBE_FAULT, now=0)
    danfoss.faults.inject(Fault.PROBE_FAULT, now=0)
    dixell_model.step(0)
    danfoss_model.step(0)
    assert dixell.raw("air_temp") == [0x8000] and dixell.get("air_temp") == "probe_fault"
    assert dixell.get("p1_status") == "open"
    assert danfoss.raw("air_off_temp") == [0x8000]
    assert danfoss.get("u00_state") == "emergency_cooling" and danfoss.raw("u00_state") == [20]
    relay = run(danfoss_model, 2 * HOUR, lambda: danfoss.get("cooling_relay"))
    on_share = sum(1 for r in relay if r) / len(relay)
    assert on_share == pytest.approx(1 / 3, abs=0.05)  # Con 15 min / CoF 30 min
    dixell.faults.clear(Fault.PROBE_FAULT)
    dixell_model.step(0)
    assert isinstance(dixell.get("air_temp"), float) and dixell.get("p1_status") == "ok"


def test_optional_roles_are_written_when_a_profile_has_them(registry: ProfileRegistry) -> None:
    profile = with_roles(
        registry.get("danfoss-ak-cc55"),
        {
            "air_on_temp": "air_on_temperature",
            "summary_alarm": "summary_alarm",
            "alarm_s4_error": "probe_alarm",
            "alarm_max_defrost_time": "defrost_timeout_alarm",
        },
    )
    device = SimulatedDevice("case-09", 9, profile)
    weak_heater = ThermalParams(first_defrost_s=HOUR, defrost_heater_k_per_s=0.001, defrost_max_s=1200)
    model = RefrigerationModel(device, weak_heater)
    model.step(10)
    assert device.get("air_on_temp") == pytest.approx(model.air_c + 1.5, abs=0.11)
    assert device.get("summary_alarm") is False
    advance(model, 2 * HOUR)
    assert device.get("alarm_max_defrost_time") is True  # the defrost ended on time, not temperature
    assert device.get("summary_alarm") is True
    device.faults.inject(Fault.PROBE_FAULT, now=0)
    model.step(0)
    assert device.get("alarm_s4_error") is True


def test_negative_time_is_refused(dixell: SimulatedDevice) -> None:
    with pytest.raises(ValueError):
        RefrigerationModel(dixell).step(-1)
