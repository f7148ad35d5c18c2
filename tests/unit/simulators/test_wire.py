"""Server-side framing: RTU request lengths and the frames a faulty device sends."""

from __future__ import annotations

import pytest

from protocols.modbus import CrcError, FrameError, Table, build_read_request, build_write_multiple_request, rtu, tcp
from simulators.faults import Fault
from simulators.wire import rtu_request_length, rtu_response, tcp_response, wrong_unit

READ = rtu.encode_frame(1, build_read_request(Table.HOLDING, 256, 1))
ANSWER = bytes.fromhex("03020099")


def test_request_lengths_come_from_the_function_code() -> None:
    assert rtu_request_length(b"") == 0
    assert rtu_request_length(b"\x01") == 0
    assert rtu_request_length(READ[:3]) == 8
    write = rtu.encode_frame(1, build_write_multiple_request(99, [1, 2, 3]))
    assert rtu_request_length(write[:6]) == 0  # byte count not seen yet
    assert rtu_request_length(write[:7]) == len(write) == 15
    assert rtu_request_length(bytes.fromhex("012B0E01")) is None  # unknown: framed by silence


def test_healthy_answer_is_a_plain_frame() -> None:
    assert rtu_response(1, ANSWER) == bytes.fromhex("0103020099782E")
    assert tcp_response(7, 1, ANSWER) == tcp.encode_frame(7, 1, ANSWER)


def test_garbage_spoils_the_crc() -> None:
    frame = rtu_response(1, ANSWER, Fault.GARBAGE)
    assert frame[:-2] == bytes.fromhex("0103020099") and len(frame) == 7
    with pytest.raises(CrcError):
        rtu.decode_frame(frame)
    with pytest.raises(FrameError, match="protocol id"):
        tcp.decode_header(tcp_response(7, 1, ANSWER, Fault.GARBAGE)[:7])


def test_truncated_sends_half_a_frame() -> None:
    assert rtu_response(1, ANSWER, Fault.TRUNCATED) == bytes.fromhex("010302")
    assert tcp_response(7, 1, ANSWER, Fault.TRUNCATED) == tcp.encode_frame(7, 1, ANSWER)[:5]


def test_wrong_unit_answers_from_the_next_unit() -> None:
    assert wrong_unit(1) == 2 and wrong_unit(247) == 1
    assert rtu.decode_frame(rtu_response(1, ANSWER, Fault.WRONG_UNIT)) == (2, ANSWER)
    assert tcp.decode_frame(tcp_response(7, 1, ANSWER, Fault.WRONG_UNIT)) == (7, 2, ANSWER)
