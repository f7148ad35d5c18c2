"""Profile schema (device_profiles layer): what a device model exposes and how it fails.

Modelled on EdgeX device profiles. Per point: the table, 0-based address, raw type,
scale/offset, byte/word order, unit, sentinels, plausible range, enumeration, access and
provenance. Per model: serial defaults, read limits, gaps and the default fault rules.
A device instance (in a store config) only names a bus, a unit id and a profile.
"""

from __future__ import annotations

from collections.abc import Sequence
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
    NOT_SEEN = "not_seen"  # a bit (`active_when`) or enum (`states`) not seen active for `max_interval_s`
    CREEP = "creep"  # short mean (`window_s`) above a rolling baseline (`baseline_s`) by more than `limit`
    RATE = "rate"  # value rose by more than `limit` within `window_s`


class SuppressAfter(StrEnum):
    """Device-level events a suppression can follow, instead of a point."""

    DEVICE_ONLINE = "device_online"  # first good poll, or back online after an outage (power returns)


class Suppression(_Strict):
    """Hold a rule off while `point` is true (an enum point: in one of `states`) and for
    `after_s` after; or, with `after: device_online`, for `after_s` after the device started
    answering again."""

    point: Name | None = None
    states: list[Name] = Field(default_factory=list)
    after: SuppressAfter | None = None
    after_s: Annotated[float, Field(ge=0, le=86_400)] = 0

    @model_validator(mode="after")
    def _one_source(self) -> Self:
        if (self.point is None) == (self.after is None):
            raise ValueError("a suppression names either a 'point' or an event ('after: device_online'), not both")
        if self.states and self.point is None:
            raise ValueError("'states' needs the enum 'point' they belong to")
        if self.after is not None and self.after_s <= 0:
            raise ValueError(f"'after: {self.after.value}' needs 'after_s' above 0")
        return self


_Field = Literal["limit", "clear", "states", "window_s", "baseline_s", "min_history_s", "max_interval_s"]
_FIELDS: tuple[_Field, ...] = ("limit", "clear", "states", "window_s", "baseline_s", "min_history_s", "max_interval_s")
_LEVELS: frozenset[_Field] = frozenset({"limit", "clear"})
# per rule type: the optional fields it takes, and those of them it needs
_TAKES: dict[RuleType, frozenset[_Field]] = {
    RuleType.HIGH_LIMIT: _LEVELS,
    RuleType.LOW_LIMIT: _LEVELS,
    RuleType.FLAG: frozenset(),
    RuleType.STATE: frozenset({"states"}),
    RuleType.PROBE_FAULT: frozenset(),
    RuleType.NOT_SEEN: frozenset({"states", "max_interval_s"}),
    RuleType.CREEP: _LEVELS | {"window_s", "baseline_s", "min_history_s"},
    RuleType.RATE: _LEVELS | {"window_s"},
}
_NEEDS: dict[RuleType, frozenset[_Field]] = {
    RuleType.HIGH_LIMIT: frozenset({"limit"}),
    RuleType.LOW_LIMIT: frozenset({"limit"}),
    RuleType.STATE: frozenset({"states"}),
    RuleType.NOT_SEEN: frozenset({"max_interval_s"}),
    RuleType.CREEP: frozenset({"limit", "window_s", "baseline_s"}),
    RuleType.RATE: frozenset({"limit", "window_s"}),
}
_RISING = (RuleType.HIGH_LIMIT, RuleType.CREEP, RuleType.RATE)  # raise above `limit`, clear at or below `clear`
Seconds = Annotated[float, Field(gt=0, le=90 * 86_400)]


class Rule(_Strict):
    code: Name
    type: RuleType
    point: Name
    limit: float | None = None
    clear: float | None = None  # separate clear level: the hysteresis
    states: list[Name] = Field(default_factory=list)
    active_when: bool = True  # flag and not_seen rules on a bit: the value that means "fault" / "seen"
    delay_s: Annotated[float, Field(ge=0, le=86_400)] = 0
    clear_delay_s: Annotated[float, Field(ge=0, le=86_400)] = 0
    window_s: Seconds | None = None  # rate: the rise is measured over it; creep: the short mean's window
    baseline_s: Seconds | None = None  # creep: the time constant of the rolling baseline
    min_history_s: Annotated[float, Field(ge=0, le=90 * 86_400)] | None = None  # creep: default baseline_s
    max_interval_s: Seconds | None = None  # not_seen: longest time without the active state
    severity: Severity = Severity.MAJOR
    fault_class: FaultClass = FaultClass.EQUIPMENT
    ticket_class: TicketClass = TicketClass.REPAIR
    # a store task still open this long after it was raised is dispatched to a technician (None: never)
    task_deadline_s: Annotated[float, Field(gt=0, le=30 * 86_400)] | None = None
    suppress: list[Suppression] = Field(default_factory=list)
    description: Annotated[str, Field(max_length=300)] = ""
    enabled: bool = True

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if self.task_deadline_s is not None and self.ticket_class is not TicketClass.STORE_TASK:
            raise ValueError(f"task_deadline_s applies to store tasks only (ticket_class is {self.ticket_class.value})")
        takes, needs = _TAKES[self.type], _NEEDS.get(self.type, frozenset())
        given = {name for name in _FIELDS if getattr(self, name) not in (None, [])}
        missing = sorted(needs - given)
        if missing:
            raise ValueError(f"{self.type.value} rule needs {_quoted(missing)}")
        extra = sorted(given - takes)
        if extra:
            raise ValueError(f"{self.type.value} rule takes no {_quoted(extra)}")
        if self.type not in (RuleType.FLAG, RuleType.NOT_SEEN) and not self.active_when:
            raise ValueError("'active_when' applies to flag and not_seen rules only")
        if self.type is RuleType.NOT_SEEN and self.states and not self.active_when:
            raise ValueError("a not_seen rule on an enum uses 'states', not 'active_when'")
        self._check_levels()
        return self

    def _check_levels(self) -> None:
        if self.limit is None:
            return
        clear = self.clear_level
        assert clear is not None
        if self.type in _RISING and clear > self.limit:
            raise ValueError(f"clear level {clear} must not be above the {_limit_name(self.type)} {self.limit}")
        if self.type is RuleType.LOW_LIMIT and clear < self.limit:
            raise ValueError(f"clear level {clear} must not be below the low limit {self.limit}")
        if self.type in (RuleType.CREEP, RuleType.RATE) and self.limit <= 0:
            raise ValueError(f"{self.type.value} rule needs a 'limit' above 0 (a rise), not {self.limit}")
        if self.type is RuleType.CREEP:
            assert self.window_s is not None and self.baseline_s is not None
            if self.window_s >= self.baseline_s:
                raise ValueError(f"window_s {self.window_s} must be shorter than baseline_s {self.baseline_s}")

    @property
    def clear_level(self) -> float | None:
        return self.clear if self.clear is not None else self.limit

    @property
    def history_needed_s(self) -> float:
        """Creep: the data needed before the rule may raise."""
        if self.min_history_s is not None:
            return self.min_history_s
        return self.baseline_s or 0.0


def _quoted(names: Sequence[str]) -> str:
    return ", ".join(f"'{name}'" for name in names)


def _limit_name(kind: RuleType) -> str:
    return {RuleType.HIGH_LIMIT: "high limit", RuleType.CREEP: "creep limit"}.get(kind, "rise limit")


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
        for rule in self.rules:
            self._check_rule(rule)
        if self.modbus.max_registers_per_read < max((p.width for p in self.points if not p.is_bool), default=1):
            raise ValueError("max_registers_per_read is smaller than the widest point")
        return self

    def _check_rule(self, rule: Rule) -> None:
        """A rule against the points it names."""
        known = {p.name for p in self.points}
        if rule.point not in known:
            raise ValueError(f"rule {rule.code!r} refers to unknown point {rule.point!r}")
        for suppression in rule.suppress:
            self._check_suppression(rule, suppression)
        point = self.point(rule.point)
        numeric = not (point.is_bool or point.enum)
        if rule.type in (RuleType.HIGH_LIMIT, RuleType.LOW_LIMIT, RuleType.CREEP, RuleType.RATE) and not numeric:
            raise ValueError(f"rule {rule.code!r}: {rule.type.value} rules need a numeric point, {point.name!r} is not")
        if rule.type is RuleType.FLAG and not point.is_bool:
            raise ValueError(f"rule {rule.code!r}: flag rules need a boolean point, {point.name!r} is not")
        if rule.type is RuleType.NOT_SEEN and numeric:
            raise ValueError(f"rule {rule.code!r}: not_seen rules need a boolean or enum point, {point.name!r} is not")
        if rule.type is RuleType.NOT_SEEN and point.enum and not rule.states:
            raise ValueError(f"rule {rule.code!r}: not_seen on the enum {point.name!r} needs 'states'")
        if rule.type is RuleType.NOT_SEEN and point.is_bool and rule.states:
            raise ValueError(f"rule {rule.code!r}: {point.name!r} is a bit; use 'active_when', not 'states'")
        _check_states(f"rule {rule.code!r}", rule.states, point)

    def _check_suppression(self, rule: Rule, suppression: Suppression) -> None:
        if suppression.point is None:
            return
        where = f"rule {rule.code!r} is suppressed by"
        try:
            point = self.point(suppression.point)
        except KeyError:
            raise ValueError(f"{where} unknown point {suppression.point!r}") from None
        if suppression.states and not point.enum:
            raise ValueError(f"{where} 'states' of {point.name!r}, which is not an enum point")
        if not suppression.states and not point.is_bool:
            raise ValueError(f"{where} {point.name!r}, which is not a bit: name the enum 'states' that suppress")
        _check_states(where, suppression.states, point)


def _check_states(where: str, states: list[str], point: Point) -> None:
    unknown = set(states) - set(point.enum.values())
    if unknown:
        raise ValueError(f"{where}: states {sorted(unknown)} not in {point.name!r}'s enum")
