"""ESC/POS real-time status: golden bytes from Epson's DLE EOT / DLE ENQ tables (DEVICES.md §3)."""

from __future__ import annotations

import pytest

from protocols.escpos import (
    ErrorStatus,
    EscPosError,
    OfflineCauseStatus,
    PaperStatus,
    PrinterCondition,
    PrinterConditions,
    PrinterStatus,
    RecoverMode,
    StatusByteError,
    StatusKind,
    build_recover_request,
    build_status_request,
    parse_error_status,
    parse_offline_cause,
    parse_paper_status,
    parse_printer_status,
    parse_status,
    printer_conditions,
)

HEALTHY = {1: 0x12, 2: 0x12, 3: 0x12, 4: 0x12}


@pytest.mark.parametrize(
    ("n", "frame"), [(1, b"\x10\x04\x01"), (2, b"\x10\x04\x02"), (3, b"\x10\x04\x03"), (4, b"\x10\x04\x04")]
)
def test_dle_eot_request(n: int, frame: bytes) -> None:
    assert build_status_request(n) == frame
    assert build_status_request(StatusKind(n)) == frame


@pytest.mark.parametrize("n", [0, 5, 255])
def test_dle_eot_n_outside_1_to_4_is_refused(n: int) -> None:
    with pytest.raises(ValueError):
        build_status_request(n)


def test_dle_enq_request() -> None:
    assert build_recover_request(RecoverMode.RESTART) == b"\x10\x05\x01"
    assert build_recover_request() == b"\x10\x05\x02"
    with pytest.raises(ValueError):
        build_recover_request(3)


def test_all_ok_is_0x12_for_every_n() -> None:
    assert parse_printer_status(b"\x12") == PrinterStatus()
    assert parse_offline_cause(b"\x12") == OfflineCauseStatus()
    assert parse_error_status(b"\x12") == ErrorStatus()
    assert parse_paper_status(b"\x12") == PaperStatus()
    assert printer_conditions(HEALTHY) == PrinterConditions()
    assert printer_conditions(HEALTHY).healthy


def test_printer_status_bits() -> None:
    assert parse_printer_status(0x12 | 0x04) == PrinterStatus(drawer_pin3=True)  # 0x16
    assert parse_printer_status(b"\x1a") == PrinterStatus(offline=True)  # 0x12 | bit3
    assert parse_printer_status(0x1E) == PrinterStatus(drawer_pin3=True, offline=True)


def test_offline_cause_bits() -> None:
    assert parse_offline_cause(0x16) == OfflineCauseStatus(cover_open=True)  # bit2
    assert parse_offline_cause(0x1A) == OfflineCauseStatus(feed_button=True)  # bit3
    assert parse_offline_cause(0x32) == OfflineCauseStatus(paper_end_stop=True)  # bit5
    assert parse_offline_cause(0x52) == OfflineCauseStatus(error=True)  # bit6


def test_error_bits_0x08_0x20_0x40() -> None:
    assert parse_error_status(0x12 | 0x08) == ErrorStatus(autocutter=True)
    assert parse_error_status(0x12 | 0x20) == ErrorStatus(unrecoverable=True)
    assert parse_error_status(0x12 | 0x40) == ErrorStatus(auto_recoverable=True)


def test_paper_near_end_0x0c_and_end_0x60() -> None:
    assert parse_paper_status(0x12 | 0x0C) == PaperStatus(near_end=True)  # 0x1E
    assert parse_paper_status(0x12 | 0x60) == PaperStatus(end=True)  # 0x72
    assert parse_paper_status(0x12 | 0x0C | 0x60) == PaperStatus(near_end=True, end=True)  # 0x7E


def test_parse_status_dispatches_on_n() -> None:
    assert parse_status(StatusKind.PAPER, b"\x1e") == PaperStatus(near_end=True)
    assert parse_status(3, b"\x1a") == ErrorStatus(autocutter=True)


@pytest.mark.parametrize(
    "status",
    [
        PrinterStatus(offline=True, drawer_pin3=True),
        OfflineCauseStatus(cover_open=True, feed_button=True, paper_end_stop=True, error=True),
        ErrorStatus(autocutter=True, unrecoverable=True, auto_recoverable=True),
        PaperStatus(near_end=True, end=True),
    ],
)
def test_to_byte_round_trips(status: PrinterStatus | OfflineCauseStatus | ErrorStatus | PaperStatus) -> None:
    kind = {PrinterStatus: 1, OfflineCauseStatus: 2, ErrorStatus: 3, PaperStatus: 4}[type(status)]
    assert parse_status(kind, status.to_byte()) == status


@pytest.mark.parametrize(
    ("answer", "why"),
    [
        (0x00, "bits 1 and 4 clear"),
        (0x10, "bit1 clear"),
        (0x02, "bit4 clear"),
        (0x13, "bit0 set"),
        (0x92, "bit7 set"),
        (0xFF, "every bit set"),
        (b"", "no answer"),
        (b"\x12\x12", "two bytes"),
        (256, "not a byte"),
    ],
)
def test_not_a_status_byte_is_an_escpos_error(answer: bytes | int, why: str) -> None:
    with pytest.raises(StatusByteError) as info:
        parse_paper_status(answer)
    assert isinstance(info.value, EscPosError), why


@pytest.mark.parametrize(
    ("bytes_", "active"),
    [
        ({**HEALTHY, 4: 0x1E}, {PrinterCondition.PAPER_NEAR_END}),
        ({1: 0x1A, 2: 0x32, 3: 0x12, 4: 0x72}, {PrinterCondition.PAPER_END, PrinterCondition.OFFLINE}),
        ({1: 0x1A, 2: 0x16, 3: 0x12, 4: 0x12}, {PrinterCondition.COVER_OPEN, PrinterCondition.OFFLINE}),
        ({1: 0x1A, 2: 0x52, 3: 0x1A, 4: 0x12}, {PrinterCondition.CUTTER_ERROR, PrinterCondition.OFFLINE}),
        ({1: 0x1A, 2: 0x52, 3: 0x32, 4: 0x12}, {PrinterCondition.UNRECOVERABLE_ERROR, PrinterCondition.OFFLINE}),
        (
            {1: 0x1A, 2: 0x52, 3: 0x52, 4: 0x12},
            {PrinterCondition.AUTO_RECOVERABLE_ERROR, PrinterCondition.OFFLINE},
        ),
    ],
)
def test_conditions_from_golden_bytes(bytes_: dict[int, int], active: set[PrinterCondition]) -> None:
    assert printer_conditions(bytes_).active == active


def test_paper_end_from_offline_cause_alone() -> None:
    assert printer_conditions({**HEALTHY, 2: 0x32}).paper_end


def test_conditions_need_all_four_answers() -> None:
    with pytest.raises(EscPosError, match=r"\[4\]"):
        printer_conditions({1: 0x12, 2: 0x12, 3: 0x12})
    with pytest.raises(StatusByteError):
        printer_conditions({**HEALTHY, 3: 0x00})


def test_condition_names_match_storeguard() -> None:
    assert {c.value for c in PrinterCondition} >= {
        "paper_near_end",
        "paper_end",
        "cover_open",
        "cutter_error",
        "unrecoverable_error",
        "offline",
    }
