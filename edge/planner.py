"""Read planning (edge layer): a device's points -> the fewest Modbus reads. Pure.

Points are grouped per table (a device is one unit) and neighbouring addresses coalesced
into one read, bridging unused gaps of up to ``max_gap`` registers (or bits) and never
reading more than the protocol limit (125 registers / 2000 bits) or the profile's
``max_registers_per_read`` / ``max_bits_per_read``. Bit-in-register points share the read
of their register.

A block carries what polling it needs, worked out once here rather than on every poll: its
request PDU and one decoder per point (``edge.decode.point_decoder``) with its offset.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from device_profiles.schema import ModbusSettings, Point
from edge.decode import PointDecoder, point_decoder
from protocols.modbus.pdu import MAX_READ_BITS, MAX_READ_REGISTERS, Table, build_read_request

_TABLE_ORDER = (Table.COIL, Table.DISCRETE, Table.HOLDING, Table.INPUT)


@dataclass(frozen=True, slots=True)
class ReadBlock:
    """One read request and the points it serves."""

    table: Table
    address: int
    count: int
    points: tuple[Point, ...]
    # (index of the point's first item in the read, its decoder), in the order of ``points``
    decoders: tuple[tuple[int, PointDecoder], ...] = field(init=False, repr=False, compare=False)
    _request: bytes = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_request", build_read_request(self.table, self.address, self.count))
        decoders = tuple((point.address - self.address, point_decoder(point)) for point in self.points)
        object.__setattr__(self, "decoders", decoders)

    @property
    def end(self) -> int:
        """Last address read (inclusive)."""
        return self.address + self.count - 1

    def request_pdu(self) -> bytes:
        return self._request


def read_cap(table: Table, modbus: ModbusSettings) -> int:
    """The most registers (or bits) one read of ``table`` may ask for."""
    if table.is_bit:
        return min(MAX_READ_BITS, modbus.max_bits_per_read)
    return min(MAX_READ_REGISTERS, modbus.max_registers_per_read)


def plan_reads(points: Iterable[Point], modbus: ModbusSettings) -> tuple[ReadBlock, ...]:
    """Coalesce ``points`` into reads; a greedy left-to-right pass gives the fewest blocks."""
    by_table: dict[Table, list[Point]] = {}
    for point in points:
        by_table.setdefault(point.table, []).append(point)
    blocks: list[ReadBlock] = []
    for table in _TABLE_ORDER:
        members = sorted(by_table.get(table, []), key=lambda p: (p.address, p.width))
        blocks.extend(_coalesce(table, members, read_cap(table, modbus), modbus.max_gap))
    return tuple(blocks)


def _coalesce(table: Table, points: list[Point], cap: int, max_gap: int) -> list[ReadBlock]:
    blocks: list[ReadBlock] = []
    start = end = -1
    members: list[Point] = []
    for point in points:
        point_end = point.address + point.width - 1
        if members:
            gap = point.address - end - 1
            new_end = max(end, point_end)
            if gap <= max_gap and new_end - start + 1 <= cap:
                end = new_end
                members.append(point)
                continue
            blocks.append(ReadBlock(table, start, end - start + 1, tuple(members)))
        start, end, members = point.address, point_end, [point]
    if members:
        blocks.append(ReadBlock(table, start, end - start + 1, tuple(members)))
    return blocks
