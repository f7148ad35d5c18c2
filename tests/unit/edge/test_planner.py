"""Read planning: neighbouring addresses coalesced, gaps bridged, caps and profile limits honoured."""

from __future__ import annotations

from device_profiles.schema import ModbusSettings, Point
from edge.planner import plan_reads
from protocols.modbus.pdu import Table
from protocols.modbus.registers import RawType
from tests.unit.edge.fakes import profile


def spans(blocks) -> list[tuple[str, int, int]]:  # type: ignore[no-untyped-def]
    return [(b.table.value, b.address, b.count) for b in blocks]


def reg(name: str, address: int, raw: RawType = RawType.INT16, table: Table = Table.HOLDING) -> Point:
    return Point(name=name, table=table, address=address, type=raw)


def test_dixell_reads_one_register_per_request() -> None:
    p = profile("dixell-xr75cx")
    blocks = plan_reads(p.points, p.modbus)
    assert spans(blocks) == [
        ("discrete", 512, 1),
        ("discrete", 513, 1),
        ("holding", 256, 1),
        ("holding", 257, 1),
        ("holding", 886, 1),
        ("holding", 3328, 1),
        ("holding", 3329, 1),  # three alarm bits of one register: one read
    ]
    assert [p.name for p in blocks[-1].points] == ["no_link_alarm", "high_pressure_alarm", "low_pressure_alarm"]


def test_danfoss_gaps_up_to_max_gap_are_bridged() -> None:
    p = profile("danfoss-ak-cc55")  # max_gap 8, 32 registers per read
    assert spans(plan_reads(p.points, p.modbus)) == [
        ("holding", 99, 1),
        ("holding", 1010, 1),
        ("holding", 2006, 1),
        ("holding", 2509, 3),  # 2509 and 2511 bridged over one unused register
        ("holding", 2529, 12),  # 2529..2531 and 2540: a gap of exactly 8 is bridged
        ("holding", 2577, 1),  # 36 past 2540: too far
        ("holding", 20002, 8),  # four alarm flags 20002..20009
    ]


def test_sco_lane_input_block_bridges_its_gap_and_keeps_the_uint32_whole() -> None:
    p = profile("storeguard-sco-lane")
    blocks = plan_reads(p.points, p.modbus)
    assert spans(blocks) == [("discrete", 0, 1), ("input", 0, 12)]
    assert len(blocks[1].points) == 10


def test_gap_one_beyond_max_gap_splits() -> None:
    settings = ModbusSettings(max_gap=2)
    points = [reg("a", 10), reg("b", 13), reg("c", 17)]  # gaps of 2 then 3
    assert spans(plan_reads(points, settings)) == [("holding", 10, 4), ("holding", 17, 1)]


def test_protocol_cap_of_125_registers() -> None:
    points = [reg(f"p{i}", i) for i in range(130)]
    assert spans(plan_reads(points, ModbusSettings())) == [("holding", 0, 125), ("holding", 125, 5)]


def test_profile_cap_and_wide_points_are_never_split() -> None:
    settings = ModbusSettings(max_registers_per_read=4, max_gap=8)
    points = [reg("a", 0), reg("b", 1, RawType.FLOAT32), reg("c", 3, RawType.UINT32), reg("d", 5)]
    # a+b = 0..2 (3 registers); c (3..4) would make 5 > 4: a new block 3..5 with d
    assert spans(plan_reads(points, settings)) == [("holding", 0, 3), ("holding", 3, 3)]


def test_bit_tables_use_the_bit_caps() -> None:
    coils = [Point(name=f"c{i}", table=Table.COIL, address=i * 2) for i in range(10)]  # 0, 2, .. 18
    assert spans(plan_reads(coils, ModbusSettings(max_bits_per_read=8, max_gap=1))) == [
        ("coil", 0, 7),
        ("coil", 8, 7),
        ("coil", 16, 3),
    ]
    many = [Point(name=f"d{i}", table=Table.DISCRETE, address=i) for i in range(2100)]
    assert spans(plan_reads(many, ModbusSettings())) == [("discrete", 0, 2000), ("discrete", 2000, 100)]


def test_tables_are_never_mixed_and_every_point_is_served_once() -> None:
    points = [reg("h", 5), reg("i", 5, table=Table.INPUT), reg("h2", 6)]
    blocks = plan_reads(points, ModbusSettings())
    assert spans(blocks) == [("holding", 5, 2), ("input", 5, 1)]
    assert sorted(p.name for b in blocks for p in b.points) == ["h", "h2", "i"]
