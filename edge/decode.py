"""Decoding (edge layer): the words of one read -> a PointReading per point, via the profile. Pure.

Raw type, byte and word order, scale and offset come from the point. A sentinel (e.g.
0x8000 = probe fault), a non-finite float or a value outside the plausible range gives
quality BAD with the reason in ``detail``; an enum gives the state name; a bit gives a bool.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from device_profiles.schema import Point
from edge.model import PointReading
from edge.planner import ReadBlock
from protocols.modbus.registers import ByteOrder, RawType, decode_words
from protocols.mqtt.messages import Quality

_SINGLE = (RawType.INT16, RawType.UINT16)


def decode_block(block: ReadBlock, values: Sequence[int]) -> list[PointReading]:
    """Readings of every point of ``block`` from the ``values`` (words or 0/1 bits) it returned."""
    if len(values) != block.count:
        raise ValueError(f"block of {block.count} items got {len(values)} values")
    base = block.address
    return [decode_point(point, values, point.address - base) for point in block.points]


def decode_point(point: Point, values: Sequence[int], start: int = 0) -> PointReading:
    """Decode ``point`` from ``values``, whose item ``start`` is at the point's own address."""
    first = values[start]
    if point.table.is_bit:
        return PointReading(point.name, bool(first), Quality.GOOD, point.unit, raw=int(first))
    if point.bit is not None:
        return PointReading(point.name, bool((first >> point.bit) & 1), Quality.GOOD, point.unit, raw=first)
    raw: int | float
    if point.type in _SINGLE:  # the common case, decoded once without struct
        pattern = first if point.byte_order is ByteOrder.BIG else ((first & 0xFF) << 8) | (first >> 8)
        raw = pattern - 0x10000 if point.type is RawType.INT16 and pattern & 0x8000 else pattern
        mask = 0xFFFF
    else:
        words = list(values[start : start + 2])
        raw = decode_words(words, point.type, point.byte_order, point.word_order)
        pattern = int(decode_words(words, RawType.UINT32, point.byte_order, point.word_order))
        mask = 0xFFFFFFFF
    raw_int = pattern if isinstance(raw, float) else int(raw)
    for sentinel, meaning in point.sentinels.items():
        if sentinel & mask == pattern:
            return PointReading(point.name, None, Quality.BAD, point.unit, raw=raw_int, detail=meaning)
    if isinstance(raw, float) and not math.isfinite(raw):
        return PointReading(point.name, None, Quality.BAD, point.unit, raw=raw_int, detail="not a number")
    if point.enum:
        state = point.enum.get(int(raw))
        if state is None:
            unknown = f"unknown_{raw_int}"
            return PointReading(point.name, unknown, Quality.GOOD, point.unit, raw=raw_int, detail="not in enum")
        return PointReading(point.name, state, Quality.GOOD, point.unit, raw=raw_int)
    value = engineering(raw, point.scale, point.offset)
    if point.plausible is not None and not point.plausible.min <= value <= point.plausible.max:
        detail = f"implausible: {value} outside {point.plausible.min}..{point.plausible.max}"
        return PointReading(point.name, value, Quality.BAD, point.unit, raw=raw_int, detail=detail)
    return PointReading(point.name, value, Quality.GOOD, point.unit, raw=raw_int)


def engineering(raw: int | float, scale: float, offset: float) -> int | float:
    """raw * scale + offset; integers stay integers when unscaled, float noise is rounded off."""
    if isinstance(raw, int) and scale == 1 and offset == 0:
        return raw
    return round(raw * scale + offset, 10)


def stale_reading(point: Point, detail: str = "offline") -> PointReading:
    """The reading of a point whose device is not answering: unknown, never the last value."""
    return PointReading(point.name, None, Quality.STALE, point.unit, detail=detail)
