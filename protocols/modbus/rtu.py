"""Modbus RTU framing (protocols layer): unit id + PDU + CRC-16/MODBUS, and wire timing."""

from __future__ import annotations

from protocols.modbus.errors import CrcError, FrameError

BITS_PER_CHAR = 11  # start + 8 data + parity or second stop + stop: RTU always sends 11 bits


def _make_table() -> tuple[int, ...]:
    table = []
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0xA001 if crc & 1 else crc >> 1
        table.append(crc)
    return tuple(table)


_CRC_TABLE = _make_table()


def crc16(data: bytes) -> int:
    """CRC-16/MODBUS (poly 0xA001 reflected, init 0xFFFF). Sent low byte first."""
    crc = 0xFFFF
    for byte in data:
        crc = (crc >> 8) ^ _CRC_TABLE[(crc ^ byte) & 0xFF]
    return crc


def encode_frame(unit: int, pdu: bytes) -> bytes:
    if not 0 <= unit <= 247:
        raise ValueError(f"unit id {unit} outside 0..247")
    body = bytes([unit]) + pdu
    crc = crc16(body)
    return body + bytes([crc & 0xFF, crc >> 8])


def decode_frame(frame: bytes) -> tuple[int, bytes]:
    """Return (unit, pdu). Raises FrameError when too short, CrcError on a CRC mismatch."""
    if len(frame) < 4:
        raise FrameError(f"RTU frame of {len(frame)} bytes is shorter than the 4-byte minimum")
    body, received = frame[:-2], frame[-2] | (frame[-1] << 8)
    if crc16(body) != received:
        raise CrcError(f"CRC mismatch: frame says 0x{received:04X}, contents give 0x{crc16(body):04X}")
    return body[0], body[1:]


def char_time(baudrate: int) -> float:
    """Seconds on the wire for one RTU character."""
    return BITS_PER_CHAR / baudrate


def t35(baudrate: int) -> float:
    """The inter-frame silence: 3.5 character times, fixed at 1.75 ms above 19200 baud."""
    if baudrate > 19200:
        return 0.00175
    return 3.5 * char_time(baudrate)


def wire_time(nbytes: int, baudrate: int) -> float:
    return nbytes * char_time(baudrate)
