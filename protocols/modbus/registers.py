"""Register value decoding (protocols layer): raw 16-bit words <-> numbers.

Byte order is the order of the two bytes inside each word; word order is the order of the
words in a 32-bit value. Modbus itself is big-endian in both, but many devices swap words.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from enum import StrEnum


class RawType(StrEnum):
    INT16 = "int16"
    UINT16 = "uint16"
    INT32 = "int32"
    UINT32 = "uint32"
    FLOAT32 = "float32"


class ByteOrder(StrEnum):
    BIG = "big"
    LITTLE = "little"


_FORMAT = {
    RawType.INT16: "h",
    RawType.UINT16: "H",
    RawType.INT32: "i",
    RawType.UINT32: "I",
    RawType.FLOAT32: "f",
}


def register_count(raw_type: RawType) -> int:
    return 1 if raw_type in (RawType.INT16, RawType.UINT16) else 2


def _words_to_bytes(words: Sequence[int], byte_order: ByteOrder, word_order: ByteOrder) -> bytes:
    ordered = list(words) if word_order is ByteOrder.BIG else list(reversed(words))
    out = bytearray()
    for word in ordered:
        if not 0 <= word <= 0xFFFF:
            raise ValueError(f"register word {word} outside 0..65535")
        hi, lo = word >> 8, word & 0xFF
        out += bytes((hi, lo)) if byte_order is ByteOrder.BIG else bytes((lo, hi))
    return bytes(out)


def _bytes_to_words(data: bytes, byte_order: ByteOrder, word_order: ByteOrder) -> list[int]:
    words = []
    for i in range(0, len(data), 2):
        hi, lo = (data[i], data[i + 1]) if byte_order is ByteOrder.BIG else (data[i + 1], data[i])
        words.append((hi << 8) | lo)
    return words if word_order is ByteOrder.BIG else list(reversed(words))


def decode_words(
    words: Sequence[int],
    raw_type: RawType,
    byte_order: ByteOrder = ByteOrder.BIG,
    word_order: ByteOrder = ByteOrder.BIG,
) -> int | float:
    """Decode the raw (unscaled) value of `raw_type` from its registers."""
    needed = register_count(raw_type)
    if len(words) != needed:
        raise ValueError(f"{raw_type.value} needs {needed} registers, got {len(words)}")
    data = _words_to_bytes(words, byte_order, word_order)
    value: int | float = struct.unpack(">" + _FORMAT[raw_type], data)[0]
    return value


def encode_value(
    value: int | float,
    raw_type: RawType,
    byte_order: ByteOrder = ByteOrder.BIG,
    word_order: ByteOrder = ByteOrder.BIG,
) -> list[int]:
    """Encode a raw (unscaled) value into registers: the inverse of decode_words."""
    if raw_type is not RawType.FLOAT32:
        value = int(round(value))
    try:
        data = struct.pack(">" + _FORMAT[raw_type], value)
    except struct.error as exc:
        raise ValueError(f"{value!r} does not fit {raw_type.value}") from exc
    return _bytes_to_words(data, byte_order, word_order)
