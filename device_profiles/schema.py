"""Profile schema (device_profiles layer): what a device model exposes and how it fails.

Modelled on EdgeX device profiles. Per point: the table, 0-based address, raw type,
scale/offset, byte/word order, unit, sentinels, plausible range, enumeration, access and
provenance. Per model: serial defaults, read limits, gaps and the default fault rules.
A device instance (in a store config) only names a bus, a unit id and a profile.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

from protocols.modbus import ByteOrder, RawType, Table, register_count
from protocols.mqtt.messages import FaultClass, Severity, TicketClass

Name = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{0,63}$")]
ModelId = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_.-]{0,63}$")]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Access(StrEnum):
    READ = "read"
    READ_WRITE = "read_write"


class Range(_Strict):
    min: float
    max: float

    @model_validator(mode="after")
    def _ordered(self) -> Self:
        if self.min >= self.max:
            raise ValueError(f"min {self.min} must be below max {self.max}")
        return self


class Point(_Strict):
    """One value of the device. A bit point (`bit` set, or a coil/discrete) decodes to bool."""

    name: Name
    table: Table
    address: Annotated[int, Field(ge=0, le=0xFFFF)]
    type: RawType = RawType.INT16
    bit: Annotated[int, Field(ge=0, le=15)] | None = None
    scale: float = 1.0
    offset: float = 0.0
    byte_order: ByteOrder = ByteOrder.BIG
    word_order: ByteOrder = ByteOrder.BIG
    unit: Annotated[str, Field(max_length=16)] = ""
    sentinels: dict[int, Name] = Field(default_factory=dict)  # raw value -> meaning, e.g. 0x8000: probe_fault
    plausible: Range | None = None  # engineering units; outside = probe fault
    enum: dict[int, Name] = Field(default_factory=dict)  # raw value -> state name
    access: Access = Access.READ
    role: Name | None = None  # meaning for simulators and rules, e.g. air_temperature, door_open
    description: str = ""
    provenance: str = ""

    @property
    def is_bool(self) -> bool:
        return self.table.is_bit or self.bit is not None

    @property
    def width(self) -> int:
        """Registers (or bits) this point occupies."""
        return 1 if self.is_bool else register_count(self.type)

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if self.table.is_bit and self.bit is not None:
            raise ValueError("'bit' selects a bit of a register; coil and discrete points are bits already")
        if self.is_bool and (self.sentinels or self.enum or self.plausible or self.scale != 1.0 or self.offset):
            raise ValueError("a boolean point takes no scale, offset, sentinels, enum or plausible range")
        if self.scale == 0:
            raise ValueError("scale must not be 0")
        if self.address + self.width - 1 > 0xFFFF:
            raise ValueError(f"point of {self.width} registers at {self.address} runs past 65535")
        for raw in list(self.sentinels) + list(self.enum):
            if not -0x80000000 <= raw <= 0xFFFFFFFF:
                raise ValueError(f"raw value {raw} does not fit a register")
        return self


class SerialSettings(_Strict):
    baudrate: Literal[1200, 2400, 4800, 9600, 19200, 38400, 57600, 115200] = 9600
    bytesize: Literal[7, 8] = 8
    parity: Literal["N", "E", "O"] = "N"
    stopbits: Literal[1, 2] = 1


class ModbusSettings(_Strict):
    serial: SerialSettings = SerialSettings()
    timeout_ms: Annotated[int, Field(ge=20, le=10_000)] = 500
    max_registers_per_read: Annotated[int, Field(ge=1, le=125)] = 125
    max_bits_per_read: Annotated[int, Field(ge=1, le=2000)] = 2000
    max_gap: Annotated[int, Field(ge=0, le=64)] = 8  # unused registers bridged when coalescing
    inter_frame_gap_ms: Annotated[int, Field(ge=0, le=1000)] = 0  # extra silence on top of t3.5


class RuleType(StrEnum):
    HIGH_LIMIT = "high_limit"  # value above `limit` for `delay_s`; clears below `clear`
    LOW_LIMIT = "low_limit"  # value below `limit` for `delay_s`; clears above `clear`
    FLAG = "flag"  # a boolean point true (an alarm bit, a door contact) for `delay_s`
    STATE = "state"  # an enum point in one of `states` for `delay_s`
    PROBE_FAULT = "probe_fault"  # a point reads a sentinel or an implausible value


class Suppression(_Strict):
    """Hold a rule off while `point` is true, and for `after_s` after it turns false."""

    point: Name
    after_s: Annotated[float, Field(ge=0, le=86_400)] = 0


class Rule(_Strict):
    code: Name
    type: RuleType
    point: Name
    limit: float | None = None
    clear: float | None = None  # separate clear level: the hysteresis
    states: list[Name] = Field(default_factory=list)
    active_when: bool = True  # flag rules: the value of the bit that means "fault"
    delay_s: Annotated[float, Field(ge=0, le=86_400)] = 0
    clear_delay_s: Annotated[float, Field(ge=0, le=86_400)] = 0
    severity: Severity = Severity.MAJOR
    fault_class: FaultClass = FaultClass.EQUIPMENT
    ticket_class: TicketClass = TicketClass.REPAIR
    suppress: list[Suppression] = Field(default_factory=list)
    description: Annotated[str, Field(max_length=300)] = ""
    enabled: bool = True

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if self.type in (RuleType.HIGH_LIMIT, RuleType.LOW_LIMIT):
            if self.limit is None:
                raise ValueError(f"{self.type.value} rule needs 'limit'")
            clear = self.clear if self.clear is not None else self.limit
            if self.type is RuleType.HIGH_LIMIT and clear > self.limit:
                raise ValueError(f"clear level {clear} must not be above the high limit {self.limit}")
            if self.type is RuleType.LOW_LIMIT and clear < self.limit:
                raise ValueError(f"clear level {clear} must not be below the low limit {self.limit}")
        elif self.limit is not None or self.clear is not None:
            raise ValueError(f"{self.type.value} rule takes no 'limit' or 'clear'")
        if self.type is not RuleType.FLAG and not self.active_when:
            raise ValueError("'active_when' applies to flag rules only")
        if self.type is RuleType.STATE and not self.states:
            raise ValueError("state rule needs 'states'")
        if self.type is not RuleType.STATE and self.states:
            raise ValueError(f"{self.type.value} rule takes no 'states'")
        return self

    @property
    def clear_level(self) -> float | None:
        return self.clear if self.clear is not None else self.limit


class OfflineSettings(_Strict):
    after_failures: Annotated[int, Field(ge=1, le=100)] = 3  # K consecutive failed polls
    clear_after_successes: Annotated[int, Field(ge=1, le=100)] = 2  # M consecutive good polls
    severity: Severity = Severity.MAJOR
    fault_class: FaultClass = FaultClass.EQUIPMENT


class DeviceProfile(_Strict):
    model: ModelId
    manufacturer: str
    description: str = ""
    kind: Literal["refrigeration_controller", "self_checkout_lane", "ups", "printer", "bill_validator"]
    protocol: Literal["modbus"] = "modbus"
    modbus: ModbusSettings = ModbusSettings()
    offline: OfflineSettings = OfflineSettings()
    points: Annotated[list[Point], Field(min_length=1)]
    rules: list[Rule] = Field(default_factory=list)
    provenance: str = ""

    def point(self, name: str) -> Point:
        for point in self.points:
            if point.name == name:
                return point
        raise KeyError(name)

    def point_with_role(self, role: str) -> Point | None:
        return next((p for p in self.points if p.role == role), None)

    @model_validator(mode="after")
    def _references(self) -> Self:
        names = [p.name for p in self.points]
        duplicates = {n for n in names if names.count(n) > 1}
        if duplicates:
            raise ValueError(f"duplicate point names: {sorted(duplicates)}")
        codes = [r.code for r in self.rules]
        if len(codes) != len(set(codes)):
            raise ValueError(f"duplicate rule codes: {sorted({c for c in codes if codes.count(c) > 1})}")
        known = set(names)
        for rule in self.rules:
            if rule.point not in known:
                raise ValueError(f"rule {rule.code!r} refers to unknown point {rule.point!r}")
            for suppression in rule.suppress:
                if suppression.point not in known:
                    raise ValueError(f"rule {rule.code!r} is suppressed by unknown point {suppression.point!r}")
            point = self.point(rule.point)
            if rule.type in (RuleType.HIGH_LIMIT, RuleType.LOW_LIMIT) and (point.is_bool or point.enum):
                raise ValueError(f"rule {rule.code!r}: limit rules need a numeric point, {point.name!r} is not")
            if rule.type is RuleType.FLAG and not point.is_bool:
                raise ValueError(f"rule {rule.code!r}: flag rules need a boolean point, {point.name!r} is not")
            if rule.type is RuleType.STATE:
                unknown = set(rule.states) - set(point.enum.values())
                if unknown:
                    raise ValueError(f"rule {rule.code!r}: states {sorted(unknown)} not in {point.name!r}'s enum")
        if self.modbus.max_registers_per_read < max((p.width for p in self.points if not p.is_bool), default=1):
            raise ValueError("max_registers_per_read is smaller than the widest point")
        return self
