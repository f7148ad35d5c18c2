"""Payload models of MQTT contract v1 (protocols layer).

Every message carries `schema_version`, a unique `message_id` and its `store_id`; events
also carry the store's monotonic `seq`. Central is idempotent on `message_id`.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, model_validator

from protocols.mqtt.topics import STORE_ID_PATTERN, TopicError, TopicKind, parse_topic

SCHEMA_VERSION = 1
MAX_PAYLOAD_BYTES = 512 * 1024
MAX_SEQ = 2**31 - 1  # stored as a 32-bit integer by central; ~68 years at one event a second
MAX_BATCH_POINTS = 2000  # a large store (120 controllers x 10 points + lanes) fits; more is split into batches

StoreId = Annotated[str, Field(pattern=STORE_ID_PATTERN)]
Identifier = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$")]
EvidenceValue = float | int | bool | str | None


class Severity(StrEnum):
    CRITICAL = "critical"
    MAJOR = "major"
    MINOR = "minor"
    INFO = "info"


class FaultClass(StrEnum):
    """What is at stake; drives priority (food safety first)."""

    FOOD_SAFETY = "food_safety"
    SAFETY = "safety"
    REVENUE = "revenue"
    COMFORT = "comfort"
    EQUIPMENT = "equipment"


class TicketClass(StrEnum):
    """Who handles it: a technician repair, or a task for the store's own staff."""

    REPAIR = "repair"
    STORE_TASK = "store_task"


class FaultState(StrEnum):
    RAISED = "raised"
    UPDATED = "updated"
    CLEARED = "cleared"


class Quality(StrEnum):
    GOOD = "good"
    BAD = "bad"  # probe fault / sentinel / implausible
    STALE = "stale"  # device not answering: value unknown


class TicketStatusValue(StrEnum):
    NEW = "new"
    ASSIGNED = "assigned"
    ACCEPTED = "accepted"
    EN_ROUTE = "en_route"
    ON_SITE = "on_site"
    AWAITING_PARTS = "awaiting_parts"  # paused: the SLA clock stops until the technician resumes
    ON_HOLD = "on_hold"  # paused: no store access, or waiting on the store
    RESOLVED = "resolved"
    CLOSED = "closed"
    CANCELLED = "cancelled"


def new_message_id() -> str:
    return str(uuid.uuid4())


def utcnow() -> datetime:
    return datetime.now(UTC)


class Message(BaseModel):
    # NaN and Infinity are not numbers a store can report, and PostgreSQL refuses them.
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    schema_version: Literal[1] = 1
    message_id: Annotated[str, Field(min_length=8, max_length=64)] = Field(default_factory=new_message_id)
    store_id: StoreId
    sent_at: AwareDatetime = Field(default_factory=utcnow)

    @model_validator(mode="before")
    @classmethod
    def _received_messages_carry_their_own_ids(cls, data: object, info: ValidationInfo) -> object:
        # Senders get a fresh message_id by default; a received message must bring its own,
        # or redelivery could not be recognised (idempotency rests on it).
        if info.context and info.context.get("received") and isinstance(data, dict):
            missing = [name for name in ("message_id", "sent_at") if name not in data]
            if missing:
                raise ValueError(f"received message lacks {', '.join(missing)}")
        return data

    def to_bytes(self) -> bytes:
        return self.model_dump_json().encode()


class FaultEvent(Message):
    """A fault of one device changed state at the edge."""

    kind: Literal["fault"] = "fault"
    seq: Annotated[int, Field(ge=0, le=MAX_SEQ)]
    device_id: Identifier
    device_model: Identifier
    fault_code: Identifier
    state: FaultState
    severity: Severity
    fault_class: FaultClass
    ticket_class: TicketClass
    occurred_at: AwareDatetime
    description: Annotated[str, Field(max_length=500)] = ""
    location: Annotated[str, Field(max_length=200)] = ""
    evidence: dict[Identifier, EvidenceValue] = Field(default_factory=dict)


class TelemetryPoint(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    device_id: Identifier
    point: Identifier
    value: float | int | bool | str | None
    quality: Quality = Quality.GOOD
    unit: Annotated[str, Field(max_length=16)] = ""


class TelemetryBatch(Message):
    """The points of one bus after one complete poll cycle: a batch per bus and interval,
    never a message per point. Central applies the points one by one, newest taken_at wins."""

    kind: Literal["telemetry"] = "telemetry"
    seq: Annotated[int, Field(ge=0, le=MAX_SEQ)]
    taken_at: AwareDatetime
    points: Annotated[list[TelemetryPoint], Field(max_length=MAX_BATCH_POINTS)]


class DeviceHealth(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    device_id: Identifier
    device_model: Identifier
    online: bool
    location: Annotated[str, Field(max_length=200)] = ""
    last_ok_at: AwareDatetime | None = None


class StoreHealth(Message):
    """Retained; the broker publishes the last will (online=false) when the gateway vanishes."""

    kind: Literal["health"] = "health"
    online: bool
    name: Annotated[str, Field(max_length=200)] = ""  # the store's display name, from its config
    gateway_version: Annotated[str, Field(max_length=32)] = ""
    devices: Annotated[list[DeviceHealth], Field(max_length=2000)] = Field(default_factory=list)


class TicketStatus(Message):
    """Central tells the store where the repair of one of its faults stands (full state, not a delta)."""

    kind: Literal["ticket_status"] = "ticket_status"
    ticket_id: Annotated[int, Field(ge=1)]
    ticket_number: Annotated[str, Field(max_length=32)]
    version: Annotated[int, Field(ge=1)]  # grows with every change; the store keeps the highest
    device_id: Identifier
    fault_code: Identifier
    status: TicketStatusValue
    priority: Annotated[int, Field(ge=1, le=5)]
    title: Annotated[str, Field(max_length=200)] = ""
    assignee: Annotated[str, Field(max_length=100)] | None = None
    eta: AwareDatetime | None = None
    note: Annotated[str, Field(max_length=2000)] = ""
    fault_active: bool = True
    changed_at: AwareDatetime


UplinkMessage = FaultEvent | TelemetryBatch | StoreHealth
_MODEL_OF_KIND: dict[TopicKind, type[Message]] = {
    TopicKind.FAULT: FaultEvent,
    TopicKind.TELEMETRY: TelemetryBatch,
    TopicKind.HEALTH: StoreHealth,
    TopicKind.TICKET_STATUS: TicketStatus,
}


class ContractError(ValueError):
    """A message breaks contract v1. `reason` is a short machine-countable label."""

    def __init__(self, reason: str, detail: str) -> None:
        self.reason = reason
        self.detail = detail
        super().__init__(f"{reason}: {detail}")


def parse_message(topic: str, payload: bytes) -> Message:
    """Validate a message against its topic. Raises ContractError with a countable reason."""
    try:
        store_id, kind = parse_topic(topic)
    except TopicError as exc:
        raise ContractError("bad_topic", str(exc)) from exc
    if len(payload) > MAX_PAYLOAD_BYTES:
        raise ContractError("too_large", f"{len(payload)} bytes exceeds {MAX_PAYLOAD_BYTES}")
    if b"\\u0000" in payload:
        # JSON can carry NUL only escaped; no text field of the contract may hold one
        # (PostgreSQL text cannot store it).
        raise ContractError("schema", "a string contains a NUL character (\\u0000)")
    model = _MODEL_OF_KIND[kind]
    try:
        message = model.model_validate_json(payload, context={"received": True})
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "payload"
        reason = "bad_json" if first["type"] == "json_invalid" else "schema"
        raise ContractError(reason, f"{where}: {first['msg']}") from exc
    if message.store_id != store_id:
        raise ContractError(
            "store_mismatch", f"payload store_id {message.store_id!r} differs from topic store {store_id!r}"
        )
    return message



# --- desired configuration (central -> store) and its acknowledgement (store -> central) ---

MAX_CONFIG_DEVICES = 2000
MAX_CONFIG_RULES = 100  # per device
ConfigHash = Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]


class RuleParameters(BaseModel):
    """Central's override of one rule of a device's profile; unset fields keep the profile's value."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    limit: float | None = None
    clear: float | None = None  # the clear level (hysteresis)
    delay_s: Annotated[float, Field(ge=0, le=86_400)] | None = None
    clear_delay_s: Annotated[float, Field(ge=0, le=86_400)] | None = None
    enabled: bool | None = None
    window_s: Annotated[float, Field(gt=0, le=90 * 86_400)] | None = None  # rate, creep: the short window
    baseline_s: Annotated[float, Field(gt=0, le=90 * 86_400)] | None = None  # creep: the rolling baseline
    min_history_s: Annotated[float, Field(ge=0, le=90 * 86_400)] | None = None  # creep: data needed first
    max_interval_s: Annotated[float, Field(gt=0, le=90 * 86_400)] | None = None  # not_seen: longest gap


DeviceOverrides = dict[Identifier, Annotated[dict[Identifier, RuleParameters], Field(max_length=MAX_CONFIG_RULES)]]


def config_hash(devices: DeviceOverrides) -> str:
    """sha256 of the canonical JSON of `devices`: keys sorted, no spaces, unset fields left out."""
    canonical = {
        device_id: {code: params.model_dump(mode="json", exclude_none=True) for code, params in rules.items()}
        for device_id, rules in devices.items()
    }
    text = json.dumps(canonical, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


class DesiredConfig(Message):
    """Retained. The full rule override set central wants a store to run (not a delta).

    `version` grows with every change per store; `hash` is `config_hash(devices)`, so a
    store recognises a repeat of what it runs already."""

    kind: Literal["config"] = "config"
    version: Annotated[int, Field(ge=1, le=MAX_SEQ)]
    hash: ConfigHash
    issued_at: AwareDatetime
    issued_by: Annotated[str, Field(max_length=64)] = ""
    devices: Annotated[DeviceOverrides, Field(max_length=MAX_CONFIG_DEVICES)] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _hash_matches(self) -> DesiredConfig:
        if self.hash != config_hash(self.devices):
            raise ValueError("hash is not the sha256 of the canonical JSON of devices")
        return self


class ConfigResult(StrEnum):
    APPLIED = "applied"  # now running this version
    UNCHANGED = "unchanged"  # this version (or a newer one) runs already: nothing done
    REJECTED = "rejected"  # invalid for this store: nothing applied, the previous config stays


class ConfigProblem(BaseModel):
    """Why a desired config was rejected: where (device, rule, field) and what is wrong."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    device_id: Annotated[str, Field(max_length=128)] | None = None
    rule_code: Annotated[str, Field(max_length=128)] | None = None
    field: Annotated[str, Field(max_length=64)] | None = None
    message: Annotated[str, Field(min_length=1, max_length=500)]


class ConfigAck(Message):
    """The store's answer to one DesiredConfig, sent through its durable outbox."""

    kind: Literal["config_ack"] = "config_ack"
    version: Annotated[int, Field(ge=1, le=MAX_SEQ)]  # the version this answers
    hash: ConfigHash  # the hash of the message this answers
    result: ConfigResult
    error: ConfigProblem | None = None  # set exactly when rejected
    applied_at: AwareDatetime  # when the store decided
    active_version: Annotated[int, Field(ge=1, le=MAX_SEQ)] | None = None  # what runs now; None: no pushed config

    @model_validator(mode="after")
    def _consistent(self) -> ConfigAck:
        if (self.result is ConfigResult.REJECTED) != (self.error is not None):
            raise ValueError("error is required for a rejected config and not allowed otherwise")
        if self.result is ConfigResult.APPLIED and self.active_version != self.version:
            raise ValueError("an applied config must be the active version")
        if self.result is ConfigResult.UNCHANGED and (self.active_version is None
                                                     or self.active_version < self.version):
            raise ValueError("unchanged means this version or a newer one is active")
        return self


_MODEL_OF_KIND[TopicKind.CONFIG] = DesiredConfig
_MODEL_OF_KIND[TopicKind.CONFIG_ACK] = ConfigAck
