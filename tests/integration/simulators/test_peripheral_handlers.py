"""The simulated printer and bill validator as pure handlers, decoded by the protocol codecs.

(Kept here beside the pty test: the brief limits new simulator tests to this package.)
"""

from __future__ import annotations

import pytest

from protocols.cctalk import (
    BillEventCode,
    EventResult,
    EventTracker,
    NakError,
    build_read_buffered_bill_events,
    build_request,
    build_request_equipment_category,
    build_simple_poll,
    parse_buffered_events,
    parse_equipment_category,
    parse_reply,
)
from protocols.escpos import (
    PrinterCondition,
    StatusKind,
    build_recover_request,
    build_status_request,
    printer_conditions,
)
from simulators.lane import PrinterCondition as LanePrinter
from simulators.lane import escpos_status_bytes
from simulators.peripherals import PrinterState, SimulatedBillValidator, SimulatedPrinter

ALL_FOUR = b"".join(build_status_request(n) for n in StatusKind)


def statuses(printer: SimulatedPrinter) -> dict[int, int]:
    return dict(zip(StatusKind, printer.handle(ALL_FOUR), strict=True))


def test_healthy_printer_answers_0x12() -> None:
    printer = SimulatedPrinter()
    assert printer.handle(ALL_FOUR) == b"\x12\x12\x12\x12"
    assert printer_conditions(statuses(printer)).healthy


@pytest.mark.parametrize(
    ("state", "answers", "active"),
    [
        (PrinterState(paper_near_end=True), b"\x12\x12\x12\x1e", {PrinterCondition.PAPER_NEAR_END}),
        (
            PrinterState(paper_near_end=True, paper_end=True),
            b"\x1a\x32\x12\x7e",
            {PrinterCondition.PAPER_NEAR_END, PrinterCondition.PAPER_END, PrinterCondition.OFFLINE},
        ),
        (PrinterState(cover_open=True), b"\x1a\x16\x12\x12", {PrinterCondition.COVER_OPEN, PrinterCondition.OFFLINE}),
        (
            PrinterState(cutter_error=True),
            b"\x1a\x52\x1a\x12",
            {PrinterCondition.CUTTER_ERROR, PrinterCondition.OFFLINE},
        ),
    ],
)
def test_printer_answers_per_state(state: PrinterState, answers: bytes, active: set[PrinterCondition]) -> None:
    printer = SimulatedPrinter(state)
    assert printer.handle(ALL_FOUR) == answers
    assert printer_conditions(statuses(printer)).active == active


def test_printer_agrees_with_lane_model() -> None:
    lane = LanePrinter(cover_open=True, paper_near_end=True, cutter_error=True)
    printer = SimulatedPrinter(PrinterState(cover_open=True, paper_near_end=True, cutter_error=True))
    assert statuses(printer) == escpos_status_bytes(lane)


def test_printer_ignores_print_data_and_recovers_cutter() -> None:
    printer = SimulatedPrinter(PrinterState(cutter_error=True))
    assert printer.handle(b"Receipt\n\x1bd\x03") == b""
    assert printer.handle(build_recover_request()) == b""
    assert printer.state.cutter_error is False and printer.recoveries == 1
    assert printer.handle(b"TOTAL" + build_status_request(3)) == b"\x12"


def test_printer_request_length() -> None:
    printer = SimulatedPrinter()
    assert printer.request_length(b"") is None
    assert printer.request_length(b"\x10") is None
    assert printer.request_length(b"\x10\x04") is None
    assert printer.request_length(b"\x10\x04\x04abc") == 3
    assert printer.request_length(b"abc\x10\x04") == 3
    assert printer.request_length(b"\x10x") == 1


def test_validator_poll_category_and_nak() -> None:
    validator = SimulatedBillValidator()
    assert validator.handle(build_simple_poll(40)) == bytes([1, 0, 40, 0, 215])
    assert parse_equipment_category(validator.handle(build_request_equipment_category(40))) == "Bill Validator"
    with pytest.raises(NakError):
        parse_reply(validator.handle(build_request(241, dest=40)))  # software revision: not simulated


def test_validator_stays_silent_for_other_address_and_bad_checksum() -> None:
    validator = SimulatedBillValidator()
    assert validator.handle(build_simple_poll(2)) == b""
    assert validator.handle(bytes([40, 0, 1, 254, 0])) == b""
    assert validator.ignored == 2


def test_validator_events_after_reset_jam_and_full() -> None:
    validator = SimulatedBillValidator()
    tracker = EventTracker()
    poll = build_read_buffered_bill_events(40)
    baseline = parse_buffered_events(validator.handle(poll), device=40)
    assert baseline.counter == 0 and tracker.update(baseline).reset
    validator.credit(2)
    validator.inject(BillEventCode.UNSAFE_JAM)
    validator.inject(BillEventCode.STACKER_FULL)
    events = parse_buffered_events(validator.handle(poll), device=40)
    assert events.counter == 3
    assert events.results[:3] == (EventResult(0, 14), EventResult(0, 6), EventResult(2, 0))
    assert [r.bill_event for r in tracker.update(events).new] == [
        None,
        BillEventCode.UNSAFE_JAM,
        BillEventCode.STACKER_FULL,
    ]


def test_validator_counter_wraps_and_loses_events() -> None:
    validator = SimulatedBillValidator()
    poll = build_read_buffered_bill_events(40)
    for _ in range(253):
        validator.credit(1)
    tracker = EventTracker()
    tracker.update(parse_buffered_events(validator.handle(poll)))
    for _ in range(4):  # 254, 255, 1, 2
        validator.inject(BillEventCode.STACKER_JAM)
    wrapped = parse_buffered_events(validator.handle(poll))
    assert wrapped.counter == 2
    assert len(tracker.update(wrapped).new) == 4
    for _ in range(7):
        validator.inject(BillEventCode.SAFE_JAM)
    update = tracker.update(parse_buffered_events(validator.handle(poll)))
    assert len(update.new) == 5 and update.lost == 2
    validator.reset()
    assert tracker.update(parse_buffered_events(validator.handle(poll))).reset


def test_credit_range() -> None:
    with pytest.raises(ValueError):
        SimulatedBillValidator().credit(0)
