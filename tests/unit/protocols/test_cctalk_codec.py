"""ccTalk frames and buffered events: golden frames built by hand from the frame definition.

`[dest][length][source][header][data...][checksum]`, all bytes summing to 0 mod 256. The
ccTalk generic specification's own example is a simple poll from host 1 to address 2:
2 0 1 254 255, answered by ACK 1 0 2 0 253.
"""

from __future__ import annotations

import pytest

from protocols.cctalk import (
    BillEventCode,
    BufferedEvents,
    CcTalkError,
    ChecksumError,
    CoinErrorCode,
    EventResult,
    EventTracker,
    Frame,
    Header,
    LengthMismatchError,
    NakError,
    ReplyError,
    TruncatedFrameError,
    build_ack,
    build_nak,
    build_read_buffered_bill_events,
    build_read_buffered_credit_or_error_codes,
    build_request_equipment_category,
    build_simple_poll,
    checksum,
    counter_steps,
    decode_frame,
    encode_frame,
    frame_length,
    next_counter,
    parse_buffered_events,
    parse_equipment_category,
    parse_reply,
)

# 2 + 0 + 1 + 254 = 257 = 1 mod 256 -> checksum 255
SPEC_POLL = bytes([2, 0, 1, 254, 255])
# 1 + 0 + 2 + 0 = 3 -> checksum 253
SPEC_ACK = bytes([1, 0, 2, 0, 253])


def test_spec_example_simple_poll_and_ack() -> None:
    assert build_simple_poll(2) == SPEC_POLL
    assert build_ack(source=2) == SPEC_ACK
    assert parse_reply(SPEC_ACK, device=2) == Frame(dest=1, source=2, header=0)


def test_simple_poll_to_bill_validator_40() -> None:
    # 40 + 0 + 1 + 254 = 295 = 256 + 39 -> checksum 256 - 39 = 217 = 0xD9
    assert build_simple_poll(40) == bytes([40, 0, 1, 254, 0xD9])
    assert sum(build_simple_poll(40)) % 256 == 0


def test_request_builders() -> None:
    # 40 + 0 + 1 + 245 = 286 = 256 + 30 -> 226
    assert build_request_equipment_category(40) == bytes([40, 0, 1, 245, 226])
    # 40 + 0 + 1 + 159 = 200 -> 56
    assert build_read_buffered_bill_events(40) == bytes([40, 0, 1, 159, 56])
    # 2 + 0 + 1 + 229 = 232 -> 24
    assert build_read_buffered_credit_or_error_codes(2) == bytes([2, 0, 1, 229, 24])


def test_ack_and_nak_from_40() -> None:
    # 1 + 0 + 40 + 0 = 41 -> 215;  1 + 0 + 40 + 5 = 46 -> 210
    assert build_ack(source=40) == bytes([1, 0, 40, 0, 215])
    assert build_nak(source=40) == bytes([1, 0, 40, 5, 210])
    with pytest.raises(NakError):
        parse_reply(bytes([1, 0, 40, 5, 210]))


def test_frame_with_data_round_trips() -> None:
    frame = Frame(dest=1, source=40, header=Header.ACK, data=b"Bill Validator")
    raw = encode_frame(frame)
    assert raw[:4] == bytes([1, 14, 40, 0]) and len(raw) == 5 + 14
    assert sum(raw) % 256 == 0 and raw[-1] == checksum(raw[:-1])
    assert decode_frame(raw) == frame
    assert parse_equipment_category(raw, device=40) == "Bill Validator"


def test_bad_checksum() -> None:
    with pytest.raises(ChecksumError, match="sum to 0x01"):
        decode_frame(bytes([40, 0, 1, 254, 0xDA]))


@pytest.mark.parametrize("raw", [b"", bytes([40, 0, 1, 254]), bytes([1, 3, 40, 0, 1, 2])])
def test_truncated(raw: bytes) -> None:
    with pytest.raises(TruncatedFrameError):
        decode_frame(raw)


def test_length_mismatch() -> None:
    # length byte says 0 data bytes, but one more byte follows
    with pytest.raises(LengthMismatchError):
        decode_frame(SPEC_POLL + b"\x00")


def test_errors_share_one_tree() -> None:
    for error in (ChecksumError, TruncatedFrameError, LengthMismatchError, NakError, ReplyError):
        assert issubclass(error, CcTalkError)


def test_frame_length_for_stream_framing() -> None:
    assert frame_length(b"") is None and frame_length(b"\x01") is None
    assert frame_length(bytes([1, 11])) == 16


def test_reply_checks() -> None:
    with pytest.raises(ReplyError, match="host"):
        parse_reply(build_ack(source=40, dest=7))
    with pytest.raises(ReplyError, match="expected 2"):
        parse_reply(build_ack(source=40), device=2)
    with pytest.raises(ReplyError, match="header 254"):
        parse_reply(bytes([1, 0, 40, 254, (-(1 + 40 + 254)) & 0xFF]))


def test_frame_fields_are_bytes() -> None:
    with pytest.raises(ValueError):
        Frame(dest=256, source=1, header=254)
    with pytest.raises(ValueError):
        Frame(dest=1, source=40, header=0, data=bytes(253))


# --- buffered events --------------------------------------------------------------------------

# Reply of bill validator 40 to header 159: counter 7, newest first:
# stacker full (0,14), bill type 3 stacked (3,0), unsafe jam (0,6), bill 1 escrow (1,1), (0,0)
EVENT_DATA = bytes([7, 0, 14, 3, 0, 0, 6, 1, 1, 0, 0])
# 1 + 11 + 40 + 0 = 52; data sum 7 + 14 + 3 + 6 + 1 + 1 = 32; total 84 -> checksum 256 - 84 = 172
EVENT_REPLY = bytes([1, 11, 40, 0]) + EVENT_DATA + bytes([172])


def test_parse_buffered_bill_events_golden() -> None:
    events = parse_buffered_events(EVENT_REPLY, device=40)
    assert events.counter == 7
    assert events.results == (
        EventResult(0, 14),
        EventResult(3, 0),
        EventResult(0, 6),
        EventResult(1, 1),
        EventResult(0, 0),
    )
    assert [r.bill_event for r in events.results] == [
        BillEventCode.STACKER_FULL,
        None,
        BillEventCode.UNSAFE_JAM,
        None,
        None,
    ]
    assert events.results[1].is_credit and not events.results[0].is_credit
    assert events.to_data() == EVENT_DATA


def test_bill_event_codes_match_devices_md() -> None:
    assert {c.value: c.name for c in BillEventCode} == {
        1: "BILL_RETURNED",
        2: "INVALID_BILL_VALIDATION",
        3: "INVALID_BILL_TRANSPORT",
        6: "UNSAFE_JAM",
        7: "STACKER_JAM",
        11: "STACKER_REMOVED",
        13: "STACKER_FAULTY",
        14: "STACKER_FULL",
        15: "STACKER_JAMMED",
        16: "SAFE_JAM",
        17: "OPTO_FRAUD",
        18: "STRING_FRAUD",
    }
    assert EventResult(0, 99).bill_event is None  # unknown code: raw value kept in .b
    assert EventResult(0, 20).coin_error is CoinErrorCode.COIN_ON_STRING


def test_event_reply_with_wrong_data_length() -> None:
    raw = build_ack(source=40, data=EVENT_DATA[:-1])
    with pytest.raises(ReplyError, match="11 data bytes"):
        parse_buffered_events(raw)


def test_counter_wraps_255_to_1() -> None:
    assert next_counter(0) == 1
    assert next_counter(254) == 255
    assert next_counter(255) == 1
    assert counter_steps(255, 1) == 1
    assert counter_steps(253, 2) == 4  # 254, 255, 1, 2
    assert counter_steps(0, 3) == 3
    assert counter_steps(9, 9) == 0


def _events(counter: int, *codes: int) -> BufferedEvents:
    """A buffer holding status events `codes`, newest first, padded with empty pairs."""
    results = [EventResult(0, c) for c in codes] + [EventResult(0, 0)] * (5 - len(codes))
    return BufferedEvents(counter=counter, results=tuple(results))


def test_tracker_first_poll_is_baseline_then_new_events_oldest_first() -> None:
    tracker = EventTracker()
    first = tracker.update(_events(4, 11, 12, 1, 2))
    assert first.first and first.new == () and first.lost == 0
    assert tracker.update(_events(4, 11, 12, 1, 2)).new == ()
    update = tracker.update(_events(6, 14, 6, 11, 12, 1))
    assert update.new == (EventResult(0, 6), EventResult(0, 14))
    assert update.lost == 0 and not update.reset


def test_tracker_across_wrap() -> None:
    tracker = EventTracker()
    tracker.update(_events(254, 1))
    update = tracker.update(_events(2, 7, 6, 14, 1))  # 255, 1, 2: three new events
    assert [r.bill_event for r in update.new] == [
        BillEventCode.STACKER_FULL,
        BillEventCode.UNSAFE_JAM,
        BillEventCode.STACKER_JAM,
    ]
    assert update.lost == 0


def test_tracker_reports_lost_events() -> None:
    tracker = EventTracker()
    tracker.update(_events(10))
    update = tracker.update(_events(18, 1, 2, 3, 6, 7))  # 8 events, only 5 in the buffer
    assert len(update.new) == 5 and update.lost == 3
    assert update.new[0] == EventResult(0, 7)  # oldest still buffered
    tracker.update(_events(250))
    assert tracker.update(_events(5, 1, 1, 1, 1, 1)).lost == 5  # 251..255, 1..5 = 10 events


def test_tracker_reset_and_events_after_reset() -> None:
    tracker = EventTracker()
    tracker.update(_events(100))
    reset = tracker.update(_events(0))
    assert reset.reset and reset.new == ()
    assert not tracker.update(_events(0)).reset  # still 0: no new reset
    after = tracker.update(_events(2, 14, 6))
    assert after.new == (EventResult(0, 6), EventResult(0, 14)) and tracker.last_counter == 2


def test_tracker_first_poll_after_power_up() -> None:
    update = EventTracker().update(_events(0))
    assert update.first and update.reset
