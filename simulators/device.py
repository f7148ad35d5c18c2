"""Profile-driven simulated Modbus device (simulators layer): a register image and its answers.

The image holds one 16-bit word (or one bit) per mapped address of each table, built from
the profile's points. Models set values by point name or role in engineering units; the
profile decides the encoding (scale/offset, raw type, byte/word order, bit, enum and
sentinel names), so the simulator and the edge share one definition of every register.
Requests are answered as the real device would: reads of unmapped addresses or longer than
the profile's limit are refused with a Modbus exception, writes only reach read_write points.
"""

from __future__ import annotations

from collections.abc import Iterable

from device_profiles.schema import Access, DeviceProfile, Point
from protocols.modbus import (
    FrameError,
    FunctionCode,
    ModbusExceptionResponse,
    RawType,
    ReadRequest,
    Table,
    WriteRequest,
    build_exception,
    build_read_response,
    build_write_response,
    decode_words,
    encode_value,
    parse_request,
    register_count,
)
from simulators.errors import PointError
from simulators.faults import Fault, FaultSet, faults_for_kind

PointValue = float | int | bool | str

ILLEGAL_DATA_ADDRESS = 0x02
ILLEGAL_DATA_VALUE = 0x03


def _unsigned_type(point: Point) -> RawType:
    return RawType.UINT16 if register_count(point.type) == 1 else RawType.UINT32


def encode_point(point: Point, value: PointValue) -> list[int]:
    """Registers for `value` of a non-boolean point: engineering value, enum name or sentinel name."""
    if isinstance(value, str):
        names = {name: raw for raw, name in (*point.enum.items(), *point.sentinels.items())}
        if value not in names:
            known = ", ".join(sorted(names)) or "none"
            raise PointError(f"point {point.name!r} has no value named {value!r} (known: {known})")
        # Enum and sentinel raws may be written signed or unsigned (0x8000 on an int16).
        mask = 0xFFFF if register_count(point.type) == 1 else 0xFFFFFFFF
        return encode_value(names[value] & mask, _unsigned_type(point), point.byte_order, point.word_order)
    raw = (float(value) - point.offset) / point.scale
    try:
        return encode_value(raw, point.type, point.byte_order, point.word_order)
    except ValueError as exc:
        raise PointError(f"{value!r} does not fit point {point.name!r} ({point.type.value})") from exc


def decode_point(point: Point, words: list[int]) -> PointValue:
    """The inverse of encode_point: a sentinel or enum name, else the scaled value."""
    unsigned = int(decode_words(words, _unsigned_type(point), point.byte_order, point.word_order))
    bits = 16 * len(words)
    signed = unsigned - (1 << bits) if unsigned >= 1 << (bits - 1) else unsigned
    for raw in (unsigned, signed):
        if raw in point.sentinels:
            return point.sentinels[raw]
        if raw in point.enum:
            return point.enum[raw]
    value = decode_words(words, point.type, point.byte_order, point.word_order)
    if point.enum:
        return value  # a state the profile does not name
    if point.scale == 1.0 and point.offset == 0.0 and isinstance(value, int):
        return value
    return round(value * point.scale + point.offset, 6)


def _as_bit(point: Point, value: PointValue) -> bool:
    if isinstance(value, bool) or value in (0, 1):
        return bool(value)
    raise PointError(f"point {point.name!r} is a bit; {value!r} is not true/false")


class SimulatedDevice:
    """One Modbus slave: unit id, profile, register image and active faults."""

    def __init__(self, device_id: str, unit: int, profile: DeviceProfile) -> None:
        self.device_id = device_id
        self.unit = unit
        self.profile = profile
        self.faults = FaultSet(faults_for_kind(profile.kind))
        self._image: dict[Table, dict[int, int]] = {table: {} for table in Table}
        self._writable: dict[Table, set[int]] = {table: set() for table in Table}
        for point in profile.points:
            for address in range(point.address, point.address + point.width):
                self._image[point.table][address] = 0
                if point.access is Access.READ_WRITE:
                    self._writable[point.table].add(address)

    # --- values by name and role --------------------------------------------------------

    def point(self, name: str) -> Point:
        try:
            return self.profile.point(name)
        except KeyError:
            raise PointError(f"profile {self.profile.model!r} has no point {name!r}") from None

    def points_with_role(self, role: str) -> list[Point]:
        return [p for p in self.profile.points if p.role == role]

    def has_role(self, role: str) -> bool:
        return any(p.role == role for p in self.profile.points)

    def set(self, name: str, value: PointValue) -> None:
        self._set_point(self.point(name), value)

    def set_role(self, role: str, value: PointValue) -> bool:
        """Set every point with this role; False when the profile has none (the model skips it)."""
        points = self.points_with_role(role)
        for point in points:
            self._set_point(point, value)
        return bool(points)

    def get(self, name: str) -> PointValue:
        return self._get_point(self.point(name))

    def get_role(self, role: str) -> PointValue | None:
        points = self.points_with_role(role)
        return self._get_point(points[0]) if points else None

    def values(self) -> dict[str, PointValue]:
        return {point.name: self._get_point(point) for point in self.profile.points}

    def raw(self, name: str) -> list[int]:
        """The raw words behind a point: a coil or discrete as 0/1, a bit point as its whole register."""
        point = self.point(name)
        return self.read(point.table, point.address, point.width)

    def read(self, table: Table, address: int, count: int) -> list[int]:
        """Raw words or bits; unmapped addresses read 0 (no access checks: that is handle_pdu's job)."""
        image = self._image[table]
        return [image.get(a, 0) for a in range(address, address + count)]

    def write_word(self, table: Table, address: int, word: int) -> None:
        """Set a whole mapped register, e.g. a status byte whose bits are separate points."""
        if address not in self._image[table]:
            raise PointError(f"{table.value} {address} is not mapped in {self.profile.model!r}")
        if not 0 <= word <= (1 if table.is_bit else 0xFFFF):
            raise PointError(f"{word} does not fit {table.value} {address}")
        self._image[table][address] = word

    def _set_point(self, point: Point, value: PointValue) -> None:
        image = self._image[point.table]
        if point.table.is_bit:
            image[point.address] = int(_as_bit(point, value))
        elif point.bit is not None:
            mask = 1 << point.bit
            word = image[point.address]
            image[point.address] = word | mask if _as_bit(point, value) else word & ~mask
        else:
            for i, word in enumerate(encode_point(point, value)):
                image[point.address + i] = word

    def _get_point(self, point: Point) -> PointValue:
        image = self._image[point.table]
        if point.table.is_bit:
            return bool(image[point.address])
        if point.bit is not None:
            return bool(image[point.address] >> point.bit & 1)
        return decode_point(point, [image[point.address + i] for i in range(point.width)])

    # --- Modbus ---------------------------------------------------------------------------

    def handle_pdu(self, pdu: bytes) -> bytes | None:
        """Answer a request PDU; None = stay silent (offline, or nothing a device could parse)."""
        if Fault.OFFLINE in self.faults or not pdu:
            return None
        forced = self.faults.get(Fault.EXCEPTION)
        if forced is not None and forced.code is not None:
            return build_exception(pdu[0], forced.code)
        try:
            request = parse_request(pdu)
            if isinstance(request, ReadRequest):
                return build_read_response(request.table, self._serve_read(request))
            self._serve_write(request)
            return build_write_response(request)
        except ModbusExceptionResponse as exc:
            return build_exception(exc.function, exc.code)
        except FrameError:
            return None

    def _serve_read(self, request: ReadRequest) -> list[int]:
        function = request.table.read_function
        settings = self.profile.modbus
        limit = settings.max_bits_per_read if request.table.is_bit else settings.max_registers_per_read
        if request.count > limit:
            raise ModbusExceptionResponse(function, ILLEGAL_DATA_VALUE)
        addresses = range(request.address, request.address + request.count)
        if not self._readable(request.table, addresses):
            raise ModbusExceptionResponse(function, ILLEGAL_DATA_ADDRESS)
        return self.read(request.table, request.address, request.count)

    def _readable(self, table: Table, addresses: range) -> bool:
        """First and last address mapped, and no unmapped run longer than the profile's max_gap.

        The profile's `max_gap` says how many unused registers a poller may bridge when it
        coalesces reads, so the device must answer those; anything else is illegal.
        """
        mapped = self._image[table]
        if addresses[0] not in mapped or addresses[-1] not in mapped:
            return False
        gap = 0
        for address in addresses:
            gap = 0 if address in mapped else gap + 1
            if gap > self.profile.modbus.max_gap:
                return False
        return True

    def _serve_write(self, request: WriteRequest) -> None:
        table = Table.COIL if request.function == FunctionCode.WRITE_SINGLE_COIL else Table.HOLDING
        addresses = range(request.address, request.address + len(request.values))
        if not all(a in self._writable[table] for a in addresses):
            raise ModbusExceptionResponse(request.function, ILLEGAL_DATA_ADDRESS)
        for address, value in zip(addresses, request.values, strict=True):
            self._image[table][address] = value


def devices_by_unit(devices: Iterable[SimulatedDevice]) -> dict[int, SimulatedDevice]:
    """Index devices on one bus by unit id; two devices on one unit is a configuration error."""
    by_unit: dict[int, SimulatedDevice] = {}
    for device in devices:
        if device.unit in by_unit:
            raise ValueError(
                f"devices {by_unit[device.unit].device_id!r} and {device.device_id!r} share unit {device.unit}"
            )
        by_unit[device.unit] = device
    return by_unit
