"""Modbus codecs (protocols layer): PDUs, RTU and TCP framing, register decoding. Pure."""

from protocols.modbus.errors import (
    CrcError,
    FrameError,
    ModbusError,
    ModbusExceptionResponse,
)
from protocols.modbus.pdu import (
    FunctionCode,
    ReadRequest,
    Table,
    WriteRequest,
    build_exception,
    build_read_request,
    build_read_response,
    build_write_multiple_request,
    build_write_response,
    build_write_single_request,
    parse_read_response,
    parse_request,
    parse_write_response,
)
from protocols.modbus.registers import (
    ByteOrder,
    RawType,
    decode_words,
    encode_value,
    register_count,
)

__all__ = [
    "ByteOrder",
    "CrcError",
    "FrameError",
    "FunctionCode",
    "ModbusError",
    "ModbusExceptionResponse",
    "RawType",
    "ReadRequest",
    "Table",
    "WriteRequest",
    "build_exception",
    "build_read_request",
    "build_read_response",
    "build_write_multiple_request",
    "build_write_response",
    "build_write_single_request",
    "decode_words",
    "encode_value",
    "parse_read_response",
    "parse_request",
    "parse_write_response",
    "register_count",
]
