"""Register decoding: types, byte and word orders, and the round trip with encoding."""

from __future__ import annotations

import math

import pytest

from protocols.modbus import ByteOrder, RawType, decode_words, encode_value

BIG, LITTLE = ByteOrder.BIG, ByteOrder.LITTLE


@pytest.mark.parametrize(
    ("words", "raw_type", "byte_order", "word_order", "expected"),
    [
        ([153], RawType.INT16, BIG, BIG, 153),  # Dixell P1: 15.3 °C in tenths
        ([0xFF9C], RawType.INT16, BIG, BIG, -100),  # -10.0 °C
        ([0x8000], RawType.INT16, BIG, BIG, -32768),  # the probe-fault sentinel as int16
        ([0x8000], RawType.UINT16, BIG, BIG, 0x8000),
        ([0x0001, 0x0002], RawType.UINT32, BIG, BIG, 0x00010002),
        ([0x0002, 0x0001], RawType.UINT32, BIG, LITTLE, 0x00010002),  # word-swapped
        ([0xFFFF, 0xFFFE], RawType.INT32, BIG, BIG, -2),
        ([0x4148, 0x0000], RawType.FLOAT32, BIG, BIG, 12.5),
        ([0x0000, 0x4148], RawType.FLOAT32, BIG, LITTLE, 12.5),
        ([0x4841, 0x0000], RawType.FLOAT32, LITTLE, BIG, 12.5),  # byte-swapped words
        ([0x0000, 0x4841], RawType.FLOAT32, LITTLE, LITTLE, 12.5),
    ],
)
def test_decode_golden_words(words, raw_type, byte_order, word_order, expected) -> None:  # type: ignore[no-untyped-def]
    assert decode_words(words, raw_type, byte_order, word_order) == expected
    assert encode_value(expected, raw_type, byte_order, word_order) == words


def test_float_round_trip_keeps_single_precision() -> None:
    words = encode_value(-18.25, RawType.FLOAT32)
    assert decode_words(words, RawType.FLOAT32) == -18.25
    nan = decode_words([0x7FC0, 0x0000], RawType.FLOAT32)
    assert isinstance(nan, float) and math.isnan(nan)


def test_wrong_register_count_and_overflow_are_errors() -> None:
    with pytest.raises(ValueError, match="needs 2 registers"):
        decode_words([1], RawType.INT32)
    with pytest.raises(ValueError, match="outside"):
        decode_words([0x10000], RawType.UINT16)
    with pytest.raises(ValueError, match="does not fit"):
        encode_value(40000, RawType.INT16)
