"""Decoding (edge layer): the words of one read -> a PointReading per point, via the profile. Pure.

Raw type, byte and word order, scale and offset come from the point. A sentinel (e.g.
0x8000 = probe fault), a non-finite float or a value outside the plausible range gives
quality BAD with the reason in ``detail``; an enum gives the state name; a bit gives a bool.

The polling hot path decodes through ``point_decoder``: everything a point's decoding
depends on is looked up once, when the read is planned, so a read's words are decoded
once each with no per-point branching on the profile. ``decode_point`` is the reference
(and the path of 32-bit and bit points); the golden tests hold both to the same results.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from device_profiles.schema import Point
from edge.model import PointReading
from protocols.modbus.registers import ByteOrder, RawType, decode_words
from protocols.mqtt.messages import Quality

if TYPE_CHECKING:
    from edge.planner import ReadBlock

_SINGLE = (RawType.INT16, RawType.UINT16)
_GOOD, _BAD = Quality.GOOD, Quality.BAD

# Decodes one point from a read's values; the int is the index of the point's first item.
PointDecoder = Callable[[Sequence[int], int], PointReading]


def decode_block(block: ReadBlock, values: Sequence[int]) -> list[PointReading]:
    """Readings of every point of ``block`` from the ``values`` (words or 0/1 bits) it returned."""
    if len(values) != block.count:
        raise ValueError(f"block of {block.count} items got {len(values)} values")
    return [decode(values, start) for start, decode in block.decoders]


def point_decoder(point: Point) -> PointDecoder:
    """A decoder of ``point`` that gives exactly what ``decode_point`` gives, faster.

    Single-register numbers (nearly every point of a refrigeration controller) get a
    specialised closure; bits and 32-bit values use ``decode_point``."""
    if point.table.is_bit or point.bit is not None or point.type not in _SINGLE:
        return lambda values, start: decode_point(point, values, start)
    name, unit = point.name, point.unit
    signed = point.type is RawType.INT16
    swap = point.byte_order is not ByteOrder.BIG
    sentinels: dict[int, str] = {}
    for sentinel, meaning in point.sentinels.items():  # the first listed wins, as in decode_point
        sentinels.setdefault(sentinel & 0xFFFF, meaning)
    enum = dict(point.enum)
    scale, offset = point.scale, point.offset
    unscaled = scale == 1 and offset == 0
    bounded = point.plausible is not None
    low, high = (point.plausible.min, point.plausible.max) if point.plausible is not None else (0.0, 0.0)

    def decode(values: Sequence[int], start: int) -> PointReading:
        pattern = values[start]
        if swap:
            pattern = ((pattern & 0xFF) << 8) | (pattern >> 8)
        raw = pattern - 0x10000 if signed and pattern & 0x8000 else pattern
        if sentinels and pattern in sentinels:
            return PointReading(name, None, _BAD, unit, raw=raw, detail=sentinels[pattern])
        if enum:
            state = enum.get(raw)
            if state is None:
                return PointReading(name, f"unknown_{raw}", _GOOD, unit, raw=raw, detail="not in enum")
            return PointReading(name, state, _GOOD, unit, raw=raw)
        value: int | float = raw if unscaled else round(raw * scale + offset, 10)
        if bounded and not low <= value <= high:
            detail = f"implausible: {value} outside {low}..{high}"
            return PointReading(name, value, _BAD, unit, raw=raw, detail=detail)
        return PointReading(name, value, _GOOD, unit, raw=raw)

    return decode


def decode_point(point: Point, values: Sequence[int], start: int = 0) -> PointReading:
    """Decode ``point`` from ``values``, whose item ``start`` is at the point's own address."""
    first = values[start]
    if point.table.is_bit:
        return PointReading(point.name, bool(first), Quality.GOOD, point.unit, raw=int(first))
    if point.bit is not None:
        return PointReading(point.name, bool((first >> point.bit) & 1), Quality.GOOD, point.unit, raw=first)
    raw: int | float
    if point.type in _SINGLE:
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
