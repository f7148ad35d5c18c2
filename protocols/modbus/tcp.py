"""Modbus TCP framing (protocols layer): the 7-byte MBAP header."""

from __future__ import annotations

import struct

from protocols.modbus.errors import FrameError

MBAP_LENGTH = 7
HEADER = struct.Struct(">HHHB")  # transaction id, protocol id (0), length of unit + PDU, unit


def encode_frame(transaction_id: int, unit: int, pdu: bytes) -> bytes:
    return HEADER.pack(transaction_id & 0xFFFF, 0, len(pdu) + 1, unit) + pdu


def decode_header(header: bytes) -> tuple[int, int, int]:
    """Return (transaction_id, unit, pdu_length) from the 7-byte MBAP header."""
    if len(header) != MBAP_LENGTH:
        raise FrameError(f"MBAP header of {len(header)} bytes, expected 7")
    transaction_id, protocol, length, unit = HEADER.unpack(header)
    if protocol != 0:
        raise FrameError(f"MBAP protocol id {protocol}, expected 0")
    if not 2 <= length <= 254:
        raise FrameError(f"MBAP length {length} outside 2..254")
    return transaction_id, unit, length - 1


def decode_frame(frame: bytes) -> tuple[int, int, bytes]:
    """Return (transaction_id, unit, pdu) from a whole MBAP frame."""
    transaction_id, unit, pdu_length = decode_header(frame[:MBAP_LENGTH])
    pdu = frame[MBAP_LENGTH:]
    if len(pdu) != pdu_length:
        raise FrameError(f"MBAP says {pdu_length} PDU bytes, frame has {len(pdu)}")
    return transaction_id, unit, pdu
