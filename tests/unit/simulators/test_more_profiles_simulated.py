"""The Eliwell, Carel (WB-REF-U) and Danfoss EKC 202 profiles in the thermal model, and the UPS image.

Faults injected into the case show up in each controller's own points (sentinel or
implausible value plus the probe-fault bit, door contact and door alarm), and the raw
registers a poller reads carry them at the DEVICES.md addresses.
"""

from __future__ import annotations

import itertools

import pytest

from device_profiles import ProfileRegistry
from protocols.modbus import Table, build_read_request, build_write_single_request, parse_read_response
from simulators.device import SimulatedDevice
from simulators.errors import FaultError
from simulators.faults import Fault
from simulators.thermal import RefrigerationModel, ThermalParams

HOUR = 3600.0
NO_DEFROST = ThermalParams(first_defrost_s=10 * 24 * 3600)

# model -> (air point, evaporator point, compressor point, probe-fault bit, door contact or None, door alarm)
CASES = {
    "eliwell-idplus-902": ("ai1_temp", "ai2_temp", "compressor_on", "ai1_fault", "door_open", "door_alarm"),
    "carel-ir33-wbref": (
        "probe1_temp",
        "probe2_temp",
        "compressor_relay",
        "probe1_fault",
        "door_open",
        "door_timeout_alarm",
    ),
    "danfoss-ekc-202": ("air_off_temp", "evaporator_temp", "cooling_relay", "alarm_s4_error", None, "alarm_door"),
}


def device_for(registry: ProfileRegistry, model: str) -> SimulatedDevice:
    return SimulatedDevice(f"case-{model}", 1, registry.get(model))


def advance(model: RefrigerationModel, seconds: float, dt: float = 10.0) -> None:
    for _ in range(int(seconds / dt)):
        model.step(dt)


def start(device: SimulatedDevice, params: ThermalParams = NO_DEFROST) -> RefrigerationModel:
    model = RefrigerationModel(device, params, setpoint_c=3.0)
    model.step(HOUR)  # settle
    return model


@pytest.mark.parametrize("model_id", sorted(CASES))
def test_each_controller_regulates_the_case_through_its_own_points(
    registry: ProfileRegistry, model_id: str
) -> None:
    air, evaporator, compressor, *_ = CASES[model_id]
    device = device_for(registry, model_id)
    model = start(device)
    assert device.get("setpoint") == 3.0
    seen = []
    for _ in range(int(2 * HOUR / 10)):
        model.step(10)
        seen.append((device.get(air), device.get(compressor)))
    temps = [t for t, _ in seen]
    assert all(isinstance(t, float) for t in temps)
    assert 2.0 <= min(temps) and max(temps) <= 5.6  # cut-out 3.0, cut-in 3.0 + 2.0
    assert sum(1 for a, b in itertools.pairwise(seen) if a[1] != b[1]) >= 8  # the relay cycles
    assert isinstance(device.get(evaporator), float)
    assert device.get(evaporator) == pytest.approx(model.evaporator_c, abs=0.11)


@pytest.mark.parametrize("model_id", sorted(CASES))
def test_probe_fault_shows_in_the_air_point_and_the_probe_bit(registry: ProfileRegistry, model_id: str) -> None:
    air, _, _, probe_bit, *_ = CASES[model_id]
    device = device_for(registry, model_id)
    model = start(device)
    assert device.get(probe_bit) is False
    device.faults.inject(Fault.PROBE_FAULT, now=0)
    model.step(0)
    point = device.point(air)
    if point.sentinels:  # Eliwell, EKC: the 0x8000 sentinel
        assert device.raw(air) == [0x8000] and device.get(air) == "probe_fault"
    else:  # Carel via WB-REF-U: no documented sentinel, an implausible reading instead
        value = device.get(air)
        assert point.plausible is not None and isinstance(value, float) and value < point.plausible.min
    assert device.get(probe_bit) is True
    device.faults.clear(Fault.PROBE_FAULT)
    model.step(0)
    assert isinstance(device.get(air), float) and device.get(probe_bit) is False


@pytest.mark.parametrize("model_id", sorted(CASES))
def test_door_open_shows_in_the_contact_and_then_the_door_alarm(registry: ProfileRegistry, model_id: str) -> None:
    air, _, _, _, contact, door_alarm = CASES[model_id]
    device = device_for(registry, model_id)
    model = start(device, NO_DEFROST.model_copy(update={"door_alarm_delay_s": 900}))
    device.faults.inject(Fault.DOOR_OPEN, now=0)
    model.step(0)
    if contact is not None:  # the door switch reads at once
        assert device.get(contact) is True
    assert device.get(door_alarm) is False  # the controller's door delay has not run yet
    advance(model, 1200)
    assert device.get(door_alarm) is True
    warm = device.get(air)
    assert isinstance(warm, float) and warm > 8.0
    device.faults.clear(Fault.DOOR_OPEN)
    model.step(0)
    assert device.get(door_alarm) is False
    if contact is not None:
        assert device.get(contact) is False


def test_eliwell_alarm_bits_are_read_back_over_modbus_within_15_registers(registry: ProfileRegistry) -> None:
    device = device_for(registry, "eliwell-idplus-902")
    model = start(device, NO_DEFROST.model_copy(update={"door_alarm_delay_s": 600}))
    device.faults.inject(Fault.PROBE_FAULT, now=0)
    device.faults.inject(Fault.DOOR_OPEN, now=0)
    advance(model, 900)
    response = device.handle_pdu(build_read_request(Table.HOLDING, 32876, 13))  # 32876..32888
    assert response is not None
    words = parse_read_response(Table.HOLDING, 13, response)
    assert words[0] & 0x0082 == 0x0082  # 32876 bit 1 AI1 fault, bit 7 door alarm
    assert device.read(Table.HOLDING, 32891, 1)[0] & 0x0020  # 32891:5 summary alarm
    assert device.read(Table.HOLDING, 32896, 1) == [0x0008]  # 32896:3 door switch
    response = device.handle_pdu(build_read_request(Table.HOLDING, 295, 5))  # AI1..AI3
    assert response is not None and parse_read_response(Table.HOLDING, 5, response)[0] == 0x8000
    # the template's 15-register limit
    assert device.handle_pdu(build_read_request(Table.HOLDING, 32876, 16)) == bytes.fromhex("8303")


def test_carel_coil_and_discrete_flags_over_modbus(registry: ProfileRegistry) -> None:
    device = device_for(registry, "carel-ir33-wbref")
    model = start(device)
    device.faults.inject(Fault.PROBE_FAULT, now=0)
    model.step(0)
    response = device.handle_pdu(build_read_request(Table.DISCRETE, 0, 8))
    assert response is not None
    assert parse_read_response(Table.DISCRETE, 8, response)[3] == 1  # DI 3 probe 1 fault
    response = device.handle_pdu(build_read_request(Table.INPUT, 403, 1))
    assert response is not None and parse_read_response(Table.INPUT, 1, response) == [(-600) & 0xFFFF]


def test_ekc_setpoint_written_over_modbus_moves_the_regulation(registry: ProfileRegistry) -> None:
    device = device_for(registry, "danfoss-ekc-202")
    model = start(device)
    assert device.handle_pdu(build_write_single_request(Table.HOLDING, 99, 0xFFF6)) is not None  # r00 = -1.0
    advance(model, 2 * HOUR)
    temps = []
    for _ in range(int(HOUR / 10)):
        model.step(10)
        value = device.get("air_off_temp")
        assert isinstance(value, float)
        temps.append(value)
    assert min(temps) >= -1.5 and max(temps) <= 1.6


@pytest.mark.parametrize("model_id", sorted(CASES))
def test_defrost_sets_the_defrost_points(registry: ProfileRegistry, model_id: str) -> None:
    device = device_for(registry, model_id)
    model = RefrigerationModel(device, ThermalParams(first_defrost_s=HOUR))
    defrost_points = [p.name for p in device.points_with_role("defrost_active")]
    assert defrost_points
    seen = []
    for _ in range(int(2 * HOUR / 10)):
        model.step(10)
        seen.append(tuple(device.get(name) for name in defrost_points))
    assert any(all(flags) for flags in seen)
    assert not any(seen[-1])


# --- APC UPS through an NMC2 -------------------------------------------------------------


@pytest.fixture
def ups(registry: ProfileRegistry) -> SimulatedDevice:
    return SimulatedDevice("ups-01", 1, registry.get("apc-smart-ups-nmc2"))


def test_ups_serves_its_registers(ups: SimulatedDevice) -> None:
    ups.set("battery_charge", 87)
    ups.set("runtime_left", 42)
    ups.set("load", 35)
    ups.set("on_battery", True)
    ups.set("low_battery", True)
    assert ups.get("battery_charge") == 87 and ups.get("load") == 35
    assert ups.raw("on_battery") == [0x0050]  # HR 3: bit 4 on battery, bit 6 low battery
    response = ups.handle_pdu(build_read_request(Table.HOLDING, 3, 10))  # 3..12, bridging 4 and 7..11
    assert response is not None
    assert parse_read_response(Table.HOLDING, 10, response) == [0x0050, 0, 87, 42, 0, 0, 0, 0, 0, 35]
    ups.set("on_battery", False)
    ups.set("mains_power", True)
    assert ups.read(Table.HOLDING, 3, 1) == [0x0048]  # bit 3 mains, bit 6 still low battery
    values = ups.values()
    assert values["mains_power"] is True and values["on_battery"] is False and values["status_word"] == 0x0048


def test_ups_refuses_writes_unmapped_reads_and_refrigeration_faults(ups: SimulatedDevice) -> None:
    assert ups.handle_pdu(build_write_single_request(Table.HOLDING, 5, 100)) == bytes.fromhex("8602")
    assert ups.handle_pdu(build_read_request(Table.HOLDING, 0, 1)) == bytes.fromhex("8302")
    with pytest.raises(FaultError):
        ups.faults.inject(Fault.DOOR_OPEN, now=0)
    ups.faults.inject(Fault.OFFLINE, now=0)
    assert ups.handle_pdu(build_read_request(Table.HOLDING, 5, 1)) is None
