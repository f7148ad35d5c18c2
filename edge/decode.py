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
from protocols.modbus.registers import RawType, decode_words, register_count
from protocols.mqtt.messages import Quality

_UNSIGNED = {1: RawType.UINT16, 2: RawType.UINT32}


def decode_block(block: ReadBlock, values: Sequence[int]) -> list[PointReading]:
    """Readings of every point of ``block`` from the ``values`` (words or 0/1 bits) it returned."""
    if len(values) != block.count:
        raise ValueError(f"block of {block.count} items got {len(values)} values")
    return [decode_point(point, values[point.address - block.address :]) for point in block.points]


def decode_point(point: Point, values: Sequence[int]) -> PointReading:
    """Decode ``point`` from ``values`` starting at the point's own address."""
    if point.table.is_bit:
        return PointReading(point.name, bool(values[0]), Quality.GOOD, point.unit, raw=int(values[0]))
    if point.bit is not None:
        return PointReading(point.name, bool((values[0] >> point.bit) & 1), Quality.GOOD, point.unit, raw=values[0])
    words = list(values[: register_count(point.type)])
    raw = decode_words(words, point.type, point.byte_order, point.word_order)
    pattern = int(decode_words(words, _UNSIGNED[len(words)], point.byte_order, point.word_order))
    mask = (1 << (16 * len(words))) - 1
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
