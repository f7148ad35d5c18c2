"""Golden-byte tests for the Modbus codecs, with frames from the Modbus specifications."""

from __future__ import annotations

import pytest

from protocols.modbus import (
    CrcError,
    FrameError,
    ModbusExceptionResponse,
    ReadRequest,
    Table,
    WriteRequest,
    build_exception,
    build_read_request,
    build_read_response,
    build_write_multiple_request,
    build_write_single_request,
    parse_read_response,
    parse_request,
    parse_write_response,
)
from protocols.modbus import rtu, tcp
from protocols.modbus.pdu import FunctionCode, expected_response_length


def test_read_holding_request_matches_application_protocol_example() -> None:
    # Modbus Application Protocol v1.1b3 §6.3: read registers 108-110 -> 03 00 6B 00 03
    assert build_read_request(Table.HOLDING, 0x6B, 3) == bytes.fromhex("03006B0003")


def test_read_holding_response_matches_application_protocol_example() -> None:
    # ... response 03 06 02 2B 00 00 00 64 -> 555, 0, 100
    pdu = bytes.fromhex("0306022B00000064")
    assert parse_read_response(Table.HOLDING, 3, pdu) == [555, 0, 100]


def test_read_coils_response_unpacks_lsb_first() -> None:
    # §6.1: coils 20-38 -> 01 03 CD 6B 05
    bits = parse_read_response(Table.COIL, 19, bytes.fromhex("0103CD6B05"))
    assert bits[:8] == [1, 0, 1, 1, 0, 0, 1, 1]  # 0xCD
    assert bits[16:] == [1, 0, 1]  # 0x05, the last 3 bits
    assert build_read_response(Table.COIL, bits) == bytes.fromhex("0103CD6B05")


@pytest.mark.parametrize(
    ("unit", "pdu", "frame"),
    [
        # Modbus over Serial Line v1.02 example: slave 17 reads 3 registers at 0x6B
        (0x11, "03006B0003", "1103006B00037687"),
        # the common "unit 1 reads 10 holding registers from 0" frame
        (0x01, "030000000A", "01030000000AC5CD"),
        (0x01, "0300000001", "010300000001840A"),
    ],
)
def test_rtu_frames_carry_the_specified_crc(unit: int, pdu: str, frame: str) -> None:
    assert rtu.encode_frame(unit, bytes.fromhex(pdu)) == bytes.fromhex(frame)
    assert rtu.decode_frame(bytes.fromhex(frame)) == (unit, bytes.fromhex(pdu))


def test_rtu_bad_crc_and_truncated_frames_are_rejected() -> None:
    good = bytes.fromhex("1103006B00037687")
    with pytest.raises(CrcError):
        rtu.decode_frame(good[:-1] + b"\x00")
    with pytest.raises(CrcError):
        rtu.decode_frame(bytes([good[0] ^ 0x01]) + good[1:])
    with pytest.raises(FrameError):
        rtu.decode_frame(good[:3])


def test_rtu_timing_follows_the_serial_line_spec() -> None:
    assert rtu.t35(9600) == pytest.approx(0.00401, abs=1e-5)
    assert rtu.t35(19200) == pytest.approx(0.00201, abs=1e-5)
    assert rtu.t35(115200) == 0.00175
    # PERFORMANCE.md: 33 characters for a 10-register read at 9600 baud = 37.8 ms
    assert rtu.wire_time(33, 9600) == pytest.approx(0.0378, abs=1e-4)


def test_mbap_frame_matches_the_tcp_example() -> None:
    frame = tcp.encode_frame(1, 0x11, bytes.fromhex("03006B0003"))
    assert frame == bytes.fromhex("0001000000061103006B0003")
    assert tcp.decode_frame(frame) == (1, 0x11, bytes.fromhex("03006B0003"))
    with pytest.raises(FrameError):
        tcp.decode_frame(frame[:-1])
    with pytest.raises(FrameError):
        tcp.decode_header(bytes.fromhex("00010001000611"))  # protocol id 1


@pytest.mark.parametrize("code", [0x02, 0x04, 0x06])
def test_exception_responses_raise_with_their_code(code: int) -> None:
    with pytest.raises(ModbusExceptionResponse) as caught:
        parse_read_response(Table.HOLDING, 1, bytes([0x83, code]))
    assert caught.value.code == code
    assert f"0x{code:02X}" in str(caught.value)


def test_malformed_read_responses_are_frame_errors() -> None:
    with pytest.raises(FrameError, match="byte count"):
        parse_read_response(Table.HOLDING, 2, bytes.fromhex("0302002A"))
    with pytest.raises(FrameError, match="data bytes"):
        parse_read_response(Table.HOLDING, 2, bytes.fromhex("0304002A"))
    with pytest.raises(FrameError, match="does not answer"):
        parse_read_response(Table.HOLDING, 1, bytes.fromhex("0402002A"))
    with pytest.raises(FrameError):
        parse_read_response(Table.HOLDING, 1, b"")


def test_request_limits_are_enforced_on_both_sides() -> None:
    with pytest.raises(ValueError):
        build_read_request(Table.HOLDING, 0, 126)
    with pytest.raises(ValueError):
        build_read_request(Table.HOLDING, 0xFFFF, 2)
    with pytest.raises(ModbusExceptionResponse) as caught:
        parse_request(bytes.fromhex("0300000000"))  # count 0
    assert caught.value.code == 0x03
    with pytest.raises(ModbusExceptionResponse) as caught:
        parse_request(bytes.fromhex("2B0E0100"))  # unsupported function
    assert caught.value.code == 0x01


def test_server_side_parses_what_the_client_side_builds() -> None:
    assert parse_request(build_read_request(Table.INPUT, 10, 4)) == ReadRequest(Table.INPUT, 10, 4)
    single = build_write_single_request(Table.HOLDING, 886, 30)
    assert parse_request(single) == WriteRequest(FunctionCode.WRITE_SINGLE_REGISTER, 886, (30,))
    multiple = build_write_multiple_request(1, [10, 0x0102])
    # §6.12 example: write 0x000A, 0x0102 at register 2 (address 1)
    assert multiple == bytes.fromhex("100001000204000A0102")
    assert parse_request(multiple) == WriteRequest(FunctionCode.WRITE_MULTIPLE_REGISTERS, 1, (10, 0x0102))
    coil = build_write_single_request(Table.COIL, 0xAC, 1)
    assert coil == bytes.fromhex("0500ACFF00")  # §6.5 example
    assert parse_request(coil) == WriteRequest(FunctionCode.WRITE_SINGLE_COIL, 0xAC, (1,))


def test_write_confirmation_must_echo_the_request() -> None:
    request = build_write_single_request(Table.HOLDING, 1, 3)
    parse_write_response(request, request)
    with pytest.raises(FrameError):
        parse_write_response(request, request[:-1] + b"\x04")
    with pytest.raises(ModbusExceptionResponse):
        parse_write_response(request, build_exception(0x06, 0x04))


def test_expected_response_lengths_frame_rtu_replies() -> None:
    assert expected_response_length(build_read_request(Table.HOLDING, 0, 10)) == 22
    assert expected_response_length(build_read_request(Table.COIL, 0, 19)) == 5
    assert expected_response_length(build_write_single_request(Table.HOLDING, 0, 1)) == 5
