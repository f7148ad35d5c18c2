"""Modbus PDU codec (protocols layer): requests and responses for the functions StoreGuard uses.

Client side builds requests and parses responses; server side (the simulators) parses
requests and builds responses. Addresses are 0-based protocol addresses.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from enum import IntEnum, StrEnum

from protocols.modbus.errors import FrameError, ModbusExceptionResponse

MAX_READ_REGISTERS = 125
MAX_READ_BITS = 2000
MAX_WRITE_REGISTERS = 123


class Table(StrEnum):
    """The four Modbus data tables."""

    COIL = "coil"
    DISCRETE = "discrete"
    HOLDING = "holding"
    INPUT = "input"

    @property
    def is_bit(self) -> bool:
        return self in (Table.COIL, Table.DISCRETE)

    @property
    def read_function(self) -> FunctionCode:
        return _READ_FUNCTION[self]


class FunctionCode(IntEnum):
    READ_COILS = 0x01
    READ_DISCRETE_INPUTS = 0x02
    READ_HOLDING_REGISTERS = 0x03
    READ_INPUT_REGISTERS = 0x04
    WRITE_SINGLE_COIL = 0x05
    WRITE_SINGLE_REGISTER = 0x06
    WRITE_MULTIPLE_REGISTERS = 0x10


_READ_FUNCTION = {
    Table.COIL: FunctionCode.READ_COILS,
    Table.DISCRETE: FunctionCode.READ_DISCRETE_INPUTS,
    Table.HOLDING: FunctionCode.READ_HOLDING_REGISTERS,
    Table.INPUT: FunctionCode.READ_INPUT_REGISTERS,
}
_TABLE_OF_READ = {fc: table for table, fc in _READ_FUNCTION.items()}


@dataclass(frozen=True, slots=True)
class ReadRequest:
    table: Table
    address: int
    count: int


@dataclass(frozen=True, slots=True)
class WriteRequest:
    function: FunctionCode
    address: int
    values: tuple[int, ...]


def _check_range(address: int, count: int, limit: int) -> None:
    if not 0 <= address <= 0xFFFF:
        raise ValueError(f"address {address} outside 0..65535")
    if not 1 <= count <= limit:
        raise ValueError(f"count {count} outside 1..{limit}")
    if address + count > 0x10000:
        raise ValueError(f"read of {count} from {address} runs past address 65535")


def build_read_request(table: Table, address: int, count: int) -> bytes:
    limit = MAX_READ_BITS if table.is_bit else MAX_READ_REGISTERS
    _check_range(address, count, limit)
    return struct.pack(">BHH", table.read_function, address, count)


def build_write_single_request(table: Table, address: int, value: int) -> bytes:
    if table is Table.COIL:
        return struct.pack(">BHH", FunctionCode.WRITE_SINGLE_COIL, address, 0xFF00 if value else 0)
    if table is Table.HOLDING:
        return struct.pack(">BHH", FunctionCode.WRITE_SINGLE_REGISTER, address, value & 0xFFFF)
    raise ValueError(f"table {table} is read-only")


def build_write_multiple_request(address: int, values: list[int] | tuple[int, ...]) -> bytes:
    _check_range(address, len(values), MAX_WRITE_REGISTERS)
    body = b"".join(struct.pack(">H", v & 0xFFFF) for v in values)
    return struct.pack(">BHHB", FunctionCode.WRITE_MULTIPLE_REGISTERS, address, len(values), len(body)) + body


def _raise_if_exception(pdu: bytes, function: int) -> None:
    if not pdu:
        raise FrameError("empty PDU")
    if pdu[0] == function | 0x80:
        if len(pdu) != 2:
            raise FrameError(f"exception response of {len(pdu)} bytes, expected 2")
        raise ModbusExceptionResponse(function, pdu[1])
    if pdu[0] != function:
        raise FrameError(f"response function 0x{pdu[0]:02X} does not answer request 0x{function:02X}")


def parse_read_response(table: Table, count: int, pdu: bytes) -> list[int]:
    """Return `count` register words, or `count` bits as 0/1, from a read response PDU."""
    function = table.read_function
    _raise_if_exception(pdu, function)
    if len(pdu) < 2:
        raise FrameError("read response truncated before its byte count")
    byte_count = pdu[1]
    expected = (count + 7) // 8 if table.is_bit else count * 2
    if byte_count != expected:
        raise FrameError(f"byte count {byte_count}, expected {expected} for {count} {table.value} items")
    data = pdu[2:]
    if len(data) != byte_count:
        raise FrameError(f"read response carries {len(data)} data bytes, byte count says {byte_count}")
    if table.is_bit:
        return [(data[i // 8] >> (i % 8)) & 1 for i in range(count)]
    return list(struct.unpack(f">{count}H", data))


def parse_write_response(request: bytes, pdu: bytes) -> None:
    """A write is confirmed by the echo of function, address and value/count."""
    _raise_if_exception(pdu, request[0])
    if pdu[:5] != request[:5] or len(pdu) != 5:
        raise FrameError("write response does not echo the request")


def expected_response_length(request: bytes) -> int:
    """Length of a normal response PDU to `request` (for framing RTU, which has no length field)."""
    function = request[0]
    if function in (FunctionCode.READ_COILS, FunctionCode.READ_DISCRETE_INPUTS):
        count = int.from_bytes(request[3:5], "big")
        return 2 + (count + 7) // 8
    if function in (FunctionCode.READ_HOLDING_REGISTERS, FunctionCode.READ_INPUT_REGISTERS):
        count = int.from_bytes(request[3:5], "big")
        return 2 + 2 * count
    if function in (
        FunctionCode.WRITE_SINGLE_COIL,
        FunctionCode.WRITE_SINGLE_REGISTER,
        FunctionCode.WRITE_MULTIPLE_REGISTERS,
    ):
        return 5
    raise ValueError(f"unsupported function 0x{function:02X}")


# --- server side (simulators) ------------------------------------------------------------


def parse_request(pdu: bytes) -> ReadRequest | WriteRequest:
    """Decode a request PDU. Raises ModbusExceptionResponse(0x01/0x03) for what a device would reject."""
    if not pdu:
        raise FrameError("empty request PDU")
    function = pdu[0]
    if function in _TABLE_OF_READ:
        if len(pdu) != 5:
            raise ModbusExceptionResponse(function, 0x03)
        address, count = struct.unpack(">HH", pdu[1:5])
        table = _TABLE_OF_READ[FunctionCode(function)]
        limit = MAX_READ_BITS if table.is_bit else MAX_READ_REGISTERS
        if not 1 <= count <= limit:
            raise ModbusExceptionResponse(function, 0x03)
        return ReadRequest(table, address, count)
    if function in (FunctionCode.WRITE_SINGLE_COIL, FunctionCode.WRITE_SINGLE_REGISTER):
        if len(pdu) != 5:
            raise ModbusExceptionResponse(function, 0x03)
        address, value = struct.unpack(">HH", pdu[1:5])
        if function == FunctionCode.WRITE_SINGLE_COIL:
            if value not in (0x0000, 0xFF00):
                raise ModbusExceptionResponse(function, 0x03)
            value = 1 if value else 0
        return WriteRequest(FunctionCode(function), address, (value,))
    if function == FunctionCode.WRITE_MULTIPLE_REGISTERS:
        if len(pdu) < 6:
            raise ModbusExceptionResponse(function, 0x03)
        address, count, byte_count = struct.unpack(">HHB", pdu[1:6])
        if not 1 <= count <= MAX_WRITE_REGISTERS or byte_count != 2 * count or len(pdu) != 6 + byte_count:
            raise ModbusExceptionResponse(function, 0x03)
        values = struct.unpack(f">{count}H", pdu[6:])
        return WriteRequest(FunctionCode.WRITE_MULTIPLE_REGISTERS, address, tuple(values))
    raise ModbusExceptionResponse(function & 0x7F, 0x01)


def build_read_response(table: Table, values: list[int] | tuple[int, ...]) -> bytes:
    if table.is_bit:
        data = bytearray((len(values) + 7) // 8)
        for i, bit in enumerate(values):
            if bit:
                data[i // 8] |= 1 << (i % 8)
        return bytes([table.read_function, len(data)]) + bytes(data)
    body = b"".join(struct.pack(">H", v & 0xFFFF) for v in values)
    return bytes([table.read_function, len(body)]) + body


def build_write_response(request: WriteRequest) -> bytes:
    if request.function == FunctionCode.WRITE_SINGLE_COIL:
        return struct.pack(">BHH", request.function, request.address, 0xFF00 if request.values[0] else 0)
    if request.function == FunctionCode.WRITE_SINGLE_REGISTER:
        return struct.pack(">BHH", request.function, request.address, request.values[0])
    return struct.pack(">BHH", request.function, request.address, len(request.values))


def build_exception(function: int, code: int) -> bytes:
    return bytes([(function & 0x7F) | 0x80, code])
