"""Decoding golden values: scaling, sentinels, plausibility, enums, bits and word orders."""

from __future__ import annotations

import math
import struct

import pytest

from device_profiles.schema import Point
from edge.decode import decode_block, decode_point, stale_reading
from edge.planner import plan_reads
from protocols.modbus.pdu import Table
from protocols.modbus.registers import ByteOrder, RawType
from protocols.mqtt.messages import Quality
from tests.unit.edge.fakes import profile

DIXELL = profile("dixell-xr75cx")
AIR = DIXELL.point("air_temp")


def test_raw_153_is_15_3_degrees() -> None:
    reading = decode_point(AIR, [153])
    assert (reading.value, reading.quality, reading.unit, reading.raw) == (15.3, Quality.GOOD, "°C", 153)


def test_negative_temperature_is_signed() -> None:
    assert decode_point(AIR, [0xFF9C]).value == -10.0  # raw -100


def test_sentinel_0x8000_is_a_probe_fault() -> None:
    reading = decode_point(AIR, [0x8000])
    assert reading.quality is Quality.BAD
    assert reading.value is None
    assert reading.detail == "probe_fault"
    assert reading.raw == -32768


def test_outside_the_plausible_range_is_bad_and_says_why() -> None:
    reading = decode_point(AIR, [1200])  # 120.0 °C: above the 110 °C plausible maximum
    assert reading.quality is Quality.BAD
    assert reading.value == 120.0
    assert "implausible" in reading.detail
    assert decode_point(AIR, [1100]).quality is Quality.GOOD  # the range is inclusive


def test_enum_gives_the_state_name() -> None:
    u00 = profile("danfoss-ak-cc55").point("u00_state")
    assert decode_point(u00, [17]).value == "door_open"
    unknown = decode_point(u00, [99])
    assert (unknown.value, unknown.quality, unknown.detail) == ("unknown_99", Quality.GOOD, "not in enum")


def test_bit_points_decode_to_bool() -> None:
    door = DIXELL.point("door_alarm")  # register 3328, bit 11
    assert decode_point(door, [0x0800]).value is True
    assert decode_point(door, [0xF7FF]).value is False
    defrost = DIXELL.point("defrost_active")  # a discrete input
    assert decode_point(defrost, [1]).value is True


@pytest.mark.parametrize(
    ("raw_type", "byte_order", "word_order", "words", "expected"),
    [
        (RawType.INT32, ByteOrder.BIG, ByteOrder.BIG, [0x1234, 0x5678], 0x12345678),
        (RawType.INT32, ByteOrder.BIG, ByteOrder.LITTLE, [0x5678, 0x1234], 0x12345678),
        (RawType.INT32, ByteOrder.BIG, ByteOrder.BIG, [0xFFFF, 0xFFFE], -2),
        (RawType.UINT32, ByteOrder.BIG, ByteOrder.LITTLE, [0xFFFE, 0xFFFF], 0xFFFFFFFE),
        (RawType.FLOAT32, ByteOrder.BIG, ByteOrder.BIG, [0x41AC, 0x0000], 21.5),
        (RawType.FLOAT32, ByteOrder.BIG, ByteOrder.LITTLE, [0x0000, 0x41AC], 21.5),
        (RawType.FLOAT32, ByteOrder.LITTLE, ByteOrder.BIG, [0xAC41, 0x0000], 21.5),
        (RawType.FLOAT32, ByteOrder.LITTLE, ByteOrder.LITTLE, [0x0000, 0xAC41], 21.5),
    ],
)
def test_32_bit_word_and_byte_orders(
    raw_type: RawType, byte_order: ByteOrder, word_order: ByteOrder, words: list[int], expected: float
) -> None:
    point = Point(name="v", table=Table.HOLDING, address=0, type=raw_type, byte_order=byte_order, word_order=word_order)
    assert decode_point(point, words).value == expected


def test_scale_and_offset_apply_to_32_bit_values() -> None:
    point = Point(
        name="e", table=Table.INPUT, address=0, type=RawType.INT32, scale=0.01, offset=-1.0, word_order=ByteOrder.LITTLE
    )
    assert decode_point(point, [0x3039, 0x0000]).value == 122.45  # 12345 * 0.01 - 1


def test_float_sentinel_and_nan_are_bad() -> None:
    nan_words = list(struct.unpack(">HH", struct.pack(">f", math.nan)))
    point = Point(name="f", table=Table.HOLDING, address=0, type=RawType.FLOAT32, sentinels={0xFFFFFFFF: "no_sensor"})
    assert decode_point(point, nan_words).detail == "not a number"
    assert decode_point(point, [0xFFFF, 0xFFFF]).detail == "no_sensor"


def test_decode_block_places_each_point_at_its_offset() -> None:
    danfoss = profile("danfoss-ak-cc55")
    block = next(b for b in plan_reads(danfoss.points, danfoss.modbus) if b.address == 2529)
    values = [0] * block.count
    values[0] = 45  # 2529 air on
    values[1] = 0x8000  # 2530 air off: probe fault
    values[2] = 0xFFEC  # 2531 thermostat air: -2.0
    values[11] = 0x0001  # 2540 bit 0: summary alarm
    readings = {r.point: r for r in decode_block(block, values)}
    assert readings["air_on_temp"].value == 4.5
    assert readings["air_off_temp"].quality is Quality.BAD
    assert readings["thermostat_air"].value == -2.0
    assert readings["summary_alarm"].value is True


def test_a_block_with_the_wrong_number_of_values_is_refused() -> None:
    block = plan_reads([AIR], DIXELL.modbus)[0]
    with pytest.raises(ValueError):
        decode_block(block, [1, 2])


def test_stale_reading_is_unknown() -> None:
    reading = stale_reading(AIR)
    assert (reading.value, reading.quality, reading.detail) == (None, Quality.STALE, "offline")


@pytest.mark.parametrize("raw_type", ["int16", "uint16"])
@pytest.mark.parametrize("byte_order", ["big", "little"])
def test_single_register_fast_path_agrees_with_the_reference_codec(raw_type: str, byte_order: str) -> None:
    from device_profiles.schema import Point
    from protocols.modbus.registers import ByteOrder, RawType, decode_words

    point = Point.model_validate({"name": "p", "table": "holding", "address": 0, "type": raw_type,
                                  "byte_order": byte_order})
    for word in range(0, 0x10000, 7):
        expected = decode_words([word], RawType(raw_type), ByteOrder(byte_order))
        reading = decode_point(point, [0, word], start=1)
        assert reading.value == expected and reading.raw == expected, hex(word)


@pytest.mark.parametrize("model", ["dixell-xr75cx", "danfoss-ak-cc55"])
def test_planned_decoders_agree_with_decode_point(model: str) -> None:
    """The decoders compiled at plan time give exactly decode_point's readings (sentinels, enums,
    plausible ranges, scale and offset, bits), for every point of real profiles."""
    device = profile(model)
    for block in plan_reads(device.points, device.modbus):
        for word in list(range(0, 0x10000, 97)) + [0x8000, 0x7FFF, 0xFFFF, 0, 1, 17, 45, 1200]:
            values = [word if not block.table.is_bit else word & 1] * block.count
            assert decode_block(block, values) == [
                decode_point(point, values, point.address - block.address) for point in block.points
            ], (block, hex(word))


def test_planned_decoder_keeps_the_first_listed_of_two_equal_sentinels() -> None:
    point = Point(name="t", table=Table.HOLDING, address=0, sentinels={-32768: "probe_fault", 0x8000: "other"})
    [block] = plan_reads([point], DIXELL.modbus)
    assert decode_block(block, [0x8000])[0].detail == "probe_fault" == decode_point(point, [0x8000]).detail
