"""The self-checkout lane model: ESC/POS status bytes, ccTalk bill events, lane state."""

from __future__ import annotations

import pytest

from device_profiles import ProfileRegistry
from protocols.modbus import Table
from simulators.device import SimulatedDevice
from simulators.faults import Fault
from simulators.lane import LaneModel, LaneParams, PrinterCondition, escpos_status_bytes
from tests.unit.simulators.helpers import with_roles


def status(lane: SimulatedDevice) -> list[int]:
    """The DLE EOT 1..4 bytes as the lane exposes them (input registers 1-4)."""
    return lane.read(Table.INPUT, 1, 4)


def test_healthy_printer_answers_0x12_everywhere() -> None:
    assert escpos_status_bytes(PrinterCondition()) == {1: 0x12, 2: 0x12, 3: 0x12, 4: 0x12}


def test_healthy_lane(lane: SimulatedDevice) -> None:
    LaneModel(lane)
    assert status(lane) == [0x12, 0x12, 0x12, 0x12]
    assert lane.get("printer_status") == 0x12 and lane.get("printer_offline") is False
    assert lane.get("bill_event") == "none" and lane.get("scanner_ok") is True
    assert lane.get("lane_state") == "in_use"


@pytest.mark.parametrize(
    ("fault", "bytes_", "flags"),
    [
        (
            Fault.PAPER_NEAR_END,
            [0x12, 0x12, 0x12, 0x1E],
            {"paper_near_end": True, "paper_end": False, "printer_offline": False},
        ),
        (
            Fault.PAPER_END,
            [0x1A, 0x32, 0x12, 0x72],
            {"paper_end": True, "paper_near_end": False, "printer_offline": True},
        ),
        (Fault.PRINTER_COVER_OPEN, [0x1A, 0x16, 0x12, 0x12], {"printer_cover_open": True, "printer_offline": True}),
        (Fault.CUTTER_ERROR, [0x1A, 0x52, 0x1A, 0x12], {"printer_cutter_error": True, "printer_unrecoverable": False}),
    ],
)
def test_printer_faults_set_the_escpos_bits(
    lane: SimulatedDevice, fault: Fault, bytes_: list[int], flags: dict[str, bool]
) -> None:
    model = LaneModel(lane)
    lane.faults.inject(fault, now=0)
    model.step(0)
    assert status(lane) == bytes_
    for name, value in flags.items():
        assert lane.get(name) is value, name
    lane.faults.clear(fault)
    model.step(0)
    assert status(lane) == [0x12, 0x12, 0x12, 0x12]


@pytest.mark.parametrize(
    ("fault", "event", "code"), [(Fault.BILL_JAM, "unsafe_jam", 6), (Fault.STACKER_FULL, "stacker_full", 14)]
)
def test_bill_validator_events_carry_cctalk_codes(lane: SimulatedDevice, fault: Fault, event: str, code: int) -> None:
    model = LaneModel(lane)
    lane.faults.inject(fault, now=0)
    model.step(0)
    assert lane.get("bill_event") == event and lane.raw("bill_event") == [code]
    lane.faults.clear(fault)
    model.step(0)
    assert lane.raw("bill_event") == [0]


def test_lane_state_follows_faults(lane: SimulatedDevice) -> None:
    model = LaneModel(lane)
    lane.faults.inject(Fault.PAPER_END, now=0)
    model.step(0)
    assert lane.get("lane_state") == "attendant_needed"
    lane.faults.inject(Fault.LANE_DOWN, now=0)
    model.step(0)
    assert lane.get("lane_state") == "out_of_service" and lane.raw("lane_state") == [3]
    lane.faults.clear(Fault.LANE_DOWN)
    lane.faults.clear(Fault.PAPER_END)
    lane.faults.inject(Fault.SCANNER_FAULT, now=0)
    model.step(0)
    assert lane.get("lane_state") == "in_use" and lane.get("scanner_ok") is False


def test_customers_come_and_go_and_are_counted(registry: ProfileRegistry) -> None:
    device = SimulatedDevice(
        "lane-02", 2, with_roles(registry.get("storeguard-sco-lane"), {"transactions": "transaction_count"})
    )
    model = LaneModel(device, LaneParams(transaction_interval_s=100, transaction_duration_s=60))
    seen = []
    for _ in range(30):
        model.step(10)
        seen.append(device.get("lane_state"))
    assert seen[:10] == ["in_use"] * 5 + ["idle"] * 4 + ["in_use"]
    assert device.get("transactions") == 3  # finished at 60, 160 and 260 s
    device.faults.inject(Fault.LANE_DOWN, now=0)
    model.step(500)  # no customers while out of service
    assert device.get("transactions") == 3


def test_lane_params_are_checked() -> None:
    with pytest.raises(ValueError, match="shorter"):
        LaneParams(transaction_interval_s=60, transaction_duration_s=60)
