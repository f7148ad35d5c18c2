"""The simulated device's register image and PDU answers, with golden raw words per profile."""

from __future__ import annotations

import pytest

from protocols.modbus import (
    Table,
    build_read_request,
    build_write_multiple_request,
    build_write_single_request,
    parse_read_response,
)
from simulators.device import SimulatedDevice
from simulators.errors import FaultError, PointError
from simulators.faults import Fault


@pytest.mark.parametrize(
    ("name", "value", "words"),
    [
        ("air_temp", 15.3, [153]),  # DEVICES.md §1.1: raw 153 = 15.3 °C at HR 256
        ("air_temp", -2.5, [0xFFE7]),
        ("air_temp", "probe_fault", [0x8000]),
        ("p1_status", "open", [1]),
        ("setpoint", 3.0, [30]),
    ],
)
def test_dixell_points_encode_to_golden_words(
    dixell: SimulatedDevice, name: str, value: object, words: list[int]
) -> None:
    dixell.set(name, value)  # type: ignore[arg-type]
    assert dixell.raw(name) == words
    assert dixell.get(name) == value


def test_dixell_air_temp_lives_at_holding_256(dixell: SimulatedDevice) -> None:
    dixell.set("air_temp", 15.3)
    assert dixell.read(Table.HOLDING, 256, 1) == [153]


def test_bit_points_share_their_register(dixell: SimulatedDevice) -> None:
    dixell.set("high_pressure_alarm", True)  # HR 3329 bit 9
    dixell.set("no_link_alarm", True)  # HR 3329 bit 8
    assert dixell.read(Table.HOLDING, 3329, 1) == [0x0300]
    dixell.set("no_link_alarm", False)
    assert dixell.read(Table.HOLDING, 3329, 1) == [0x0200]
    assert dixell.get("high_pressure_alarm") is True
    dixell.set("door_alarm", True)  # HR 3328 bit 11
    assert dixell.read(Table.HOLDING, 3328, 1) == [0x0800]


def test_discrete_points_are_bits(dixell: SimulatedDevice) -> None:
    dixell.set("defrost_active", True)
    assert dixell.read(Table.DISCRETE, 512, 2) == [0, 1]
    assert dixell.get("defrost_active") is True


@pytest.mark.parametrize(
    ("name", "value", "words"),
    [
        ("u00_state", "defrost", [14]),
        ("u00_state", "door_open", [17]),
        ("u00_state", "emergency_cooling", [20]),
        ("air_off_temp", -18.5, [0xFF47]),
        ("evaporator_temp", "probe_fault", [0x8000]),
        ("setpoint", 2.0, [20]),
    ],
)
def test_danfoss_points_encode_to_golden_words(
    danfoss: SimulatedDevice, name: str, value: object, words: list[int]
) -> None:
    danfoss.set(name, value)  # type: ignore[arg-type]
    assert danfoss.raw(name) == words
    assert danfoss.get(name) == value


def test_lane_points_encode_to_golden_words(lane: SimulatedDevice) -> None:
    lane.set("transactions", 70000)  # uint32, big-endian words
    assert lane.raw("transactions") == [0x0001, 0x1170]
    assert lane.get("transactions") == 70000
    lane.set("bill_event", "stacker_full")
    assert lane.raw("bill_event") == [14]
    lane.set("lane_state", "out_of_service")
    assert lane.read(Table.INPUT, 0, 1) == [3]


def test_values_that_do_not_fit_are_refused(dixell: SimulatedDevice) -> None:
    with pytest.raises(PointError, match="no value named"):
        dixell.set("p1_status", "melted")
    with pytest.raises(PointError, match="does not fit"):
        dixell.set("air_temp", 4000.0)  # raw 40000 is not an int16
    with pytest.raises(PointError, match="is a bit"):
        dixell.set("door_alarm", 2)
    with pytest.raises(PointError, match="no point"):
        dixell.set("nonexistent", 1)


def test_roles_reach_the_right_points(dixell: SimulatedDevice, danfoss: SimulatedDevice) -> None:
    assert dixell.set_role("air_temperature", 4.2)
    assert danfoss.set_role("air_temperature", 4.2)
    assert dixell.get("air_temp") == 4.2
    assert danfoss.get("air_off_temp") == 4.2
    assert not dixell.set_role("controller_state", "defrost")  # Dixell has no u00
    assert dixell.get_role("controller_state") is None


# --- PDU answers ---------------------------------------------------------------------------


def test_read_answers_with_the_registers(dixell: SimulatedDevice) -> None:
    dixell.set("air_temp", 15.3)
    assert dixell.handle_pdu(build_read_request(Table.HOLDING, 256, 1)) == bytes.fromhex("03020099")


def test_unmapped_address_answers_illegal_data_address(dixell: SimulatedDevice) -> None:
    assert dixell.handle_pdu(build_read_request(Table.HOLDING, 300, 1)) == bytes.fromhex("8302")
    assert dixell.handle_pdu(build_read_request(Table.INPUT, 256, 1)) == bytes.fromhex("8402")
    assert dixell.handle_pdu(build_read_request(Table.COIL, 512, 1)) == bytes.fromhex("8102")


def test_read_longer_than_the_profile_allows_is_refused(dixell: SimulatedDevice) -> None:
    # Dixell XR-CX: "number of registers is always 1"
    assert dixell.handle_pdu(build_read_request(Table.HOLDING, 256, 2)) == bytes.fromhex("8303")
    assert dixell.handle_pdu(build_read_request(Table.DISCRETE, 512, 2)) == bytes.fromhex("8203")


def test_reads_may_bridge_gaps_up_to_max_gap(danfoss: SimulatedDevice) -> None:
    danfoss.set("air_off_temp", 4.0)
    # 2529..2531 mapped, 2532..2539 unused (8 = max_gap), 2540 mapped
    response = danfoss.handle_pdu(build_read_request(Table.HOLDING, 2529, 12))
    assert response is not None
    words = parse_read_response(Table.HOLDING, 12, response)
    assert words[1] == 40 and words[3:11] == [0] * 8
    # ending on an unmapped register, or bridging 17 unused ones, is illegal
    assert danfoss.handle_pdu(build_read_request(Table.HOLDING, 2529, 13)) == bytes.fromhex("8302")
    assert danfoss.handle_pdu(build_read_request(Table.HOLDING, 2511, 19)) == bytes.fromhex("8302")


def test_writes_reach_read_write_points_only(dixell: SimulatedDevice, danfoss: SimulatedDevice) -> None:
    request = build_write_single_request(Table.HOLDING, 886, 45)
    assert dixell.handle_pdu(request) == request  # FC06 answer echoes the request
    assert dixell.get("setpoint") == 4.5
    assert dixell.handle_pdu(build_write_single_request(Table.HOLDING, 256, 1)) == bytes.fromhex("8602")
    assert dixell.get("air_temp") == 0.0
    multiple = build_write_multiple_request(99, [0xFFF6])
    assert danfoss.handle_pdu(multiple) == bytes.fromhex("1000630001")
    assert danfoss.get("setpoint") == -1.0
    assert danfoss.handle_pdu(build_write_multiple_request(99, [1, 2])) == bytes.fromhex("9002")


def test_unknown_function_answers_illegal_function(dixell: SimulatedDevice) -> None:
    assert dixell.handle_pdu(bytes.fromhex("2B0E0100")) == bytes.fromhex("AB01")
    assert dixell.handle_pdu(b"") is None


def test_offline_device_stays_silent_and_recovers(dixell: SimulatedDevice) -> None:
    request = build_read_request(Table.HOLDING, 256, 1)
    dixell.faults.inject(Fault.OFFLINE, now=0)
    assert dixell.handle_pdu(request) is None
    assert dixell.faults.clear("offline")
    assert dixell.handle_pdu(request) == bytes.fromhex("03020000")


def test_exception_fault_answers_its_code(dixell: SimulatedDevice) -> None:
    request = build_read_request(Table.HOLDING, 256, 1)
    dixell.faults.inject(Fault.EXCEPTION, now=0)
    assert dixell.handle_pdu(request) == bytes.fromhex("8304")  # default: server device failure
    dixell.faults.inject(Fault.EXCEPTION, now=0, code=0x06)
    assert dixell.handle_pdu(request) == bytes.fromhex("8306")  # server device busy


def test_faults_are_checked_against_the_device_kind(dixell: SimulatedDevice, lane: SimulatedDevice) -> None:
    with pytest.raises(FaultError, match="does not apply"):
        dixell.faults.inject("paper_end", now=0)
    with pytest.raises(FaultError, match="does not apply"):
        lane.faults.inject("door_open", now=0)
    with pytest.raises(FaultError, match="unknown fault"):
        dixell.faults.inject("meltdown", now=0)
    with pytest.raises(FaultError, match="only the 'exception' fault"):
        dixell.faults.inject("offline", now=0, code=4)
    with pytest.raises(FaultError, match="not a Modbus exception code"):
        dixell.faults.inject("exception", now=0, code=0x42)
    with pytest.raises(FaultError, match="positive"):
        dixell.faults.inject("offline", now=0, duration_s=0)


def test_faults_expire_after_their_duration(dixell: SimulatedDevice) -> None:
    dixell.faults.inject("door_open", now=100.0, duration_s=60)
    dixell.faults.inject("offline", now=100.0)
    assert dixell.faults.expire(159.9) == []
    assert dixell.faults.expire(160.0) == [Fault.DOOR_OPEN]
    assert Fault.OFFLINE in dixell.faults and Fault.DOOR_OPEN not in dixell.faults
    assert dixell.faults.get(Fault.OFFLINE).remaining_s(500) is None  # type: ignore[union-attr]


def test_framing_fault_precedence(dixell: SimulatedDevice) -> None:
    assert dixell.faults.framing_fault is None
    dixell.faults.inject("wrong_unit", now=0)
    dixell.faults.inject("garbage", now=0)
    assert dixell.faults.framing_fault is Fault.GARBAGE
    dixell.faults.inject("truncated", now=0)
    assert dixell.faults.framing_fault is Fault.TRUNCATED
