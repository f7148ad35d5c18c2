"""HTTP bodies and responses of the thresholds API (thresholds domain: schemas)."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

from central.thresholds.models import Scope
from central.thresholds.resolve import Source
from protocols.mqtt.messages import MAX_CONFIG_RULES, Identifier, RuleParameters

Reason = Annotated[str, Field(min_length=1, max_length=500)]
# PUT: the rule's full parameters at this scope. PATCH: the fields given replace this scope's,
# a field given as null is removed, a rule given as null loses all this scope's fields.
Rules = Annotated[dict[Identifier, RuleParameters | None], Field(max_length=MAX_CONFIG_RULES)]


class Op(StrEnum):
    PUT = "put"  # the target's whole override set becomes `rules`
    PATCH = "patch"  # merged into the target's overrides
    DELETE = "delete"  # the rules named (all when none are) lose the target's overrides


class TargetBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    scope: Scope
    model: Identifier | None = None  # model and store scopes
    store_id: Identifier | None = None  # store and device scopes
    device_id: Identifier | None = None  # device scope

    @model_validator(mode="after")
    def _parts_of_the_scope(self) -> Self:
        needs = {Scope.MODEL: {"model"}, Scope.STORE: {"model", "store_id"},
                 Scope.DEVICE: {"store_id", "device_id"}}[self.scope]
        given = {name for name in ("model", "store_id", "device_id") if getattr(self, name) is not None}
        if given != needs:
            raise ValueError(f"a {self.scope.value} target names exactly {', '.join(sorted(needs))}")
        return self


class RulesBody(BaseModel):
    """The body of PUT and PATCH on a scope."""

    model_config = ConfigDict(extra="forbid")

    reason: Reason
    rules: Rules


class ChangeBody(BaseModel):
    """One change, as POST /thresholds/changes applies it and POST /thresholds/dry-run tries it."""

    model_config = ConfigDict(extra="forbid")

    op: Op
    target: TargetBody
    reason: Reason
    rules: Rules = Field(default_factory=dict)


class FieldValue(BaseModel):
    value: Any
    source: Source


class EffectiveRule(BaseModel):
    type: str
    point: str
    unit: str
    plausible: tuple[float, float] | None  # (min, max) of the point, where the profile gives it
    fields: dict[str, FieldValue]


class ScopeRead(BaseModel):
    scope: Scope
    target: str
    model: str | None
    store_id: str | None
    device_id: str | None
    overrides: dict[str, dict[str, Any]]  # the fields this scope sets
    effective: dict[str, EffectiveRule]  # profile <- ... <- this scope, with where each value comes from


class Problem(BaseModel):
    """What is wrong where: scope:target/rule/field."""

    scope: Scope
    target: str
    model: str | None = None
    store_id: str | None = None
    device_id: str | None = None
    rule_code: str | None = None
    field: str | None = None
    message: str

    @property
    def where(self) -> str:
        return "/".join(part for part in (f"{self.scope.value}:{self.target}", self.rule_code, self.field) if part)


class DiffEntry(BaseModel):
    scope: Scope
    target: str
    rule: str
    field: str
    old: Any
    new: Any


class StoreVersionRead(BaseModel):
    store_id: str
    version: int
    hash: str


class ChangeSummary(BaseModel):
    version: int
    author: str
    created_at: datetime
    reason: str
    fields_changed: int
    stores_issued: int


class ChangeRead(BaseModel):
    version: int
    author: str
    created_at: datetime
    reason: str
    request: dict[str, Any]
    diff: list[DiffEntry]
    stores: list[StoreVersionRead]


class ApplyRead(BaseModel):
    created: bool  # False: the change changed nothing, no version was made
    change: ChangeRead | None


class EffectiveChange(BaseModel):
    rule: str
    field: str
    before: Any
    after: Any
    source_before: Source
    source_after: Source


class DeviceImpact(BaseModel):
    device_id: str
    model: str
    changes: list[EffectiveChange]


class StoreImpact(BaseModel):
    store_id: str
    region: str
    current_version: int | None
    current_hash: str | None
    compiled_hash: str
    new_version: bool  # applying would issue a new desired config version for the store
    devices: list[DeviceImpact]


class DryRunRead(BaseModel):
    valid: bool
    problems: list[Problem]
    diff: list[DiffEntry]
    stores: list[StoreImpact]  # stores with a device whose effective values change
    devices_affected: int
    store_versions: int  # how many stores would get a new version


class RolloutState(StrEnum):
    UP_TO_DATE = "up_to_date"  # the store says it runs the desired version
    PENDING = "pending"  # the desired version is not acknowledged yet
    FAILED = "failed"  # the store rejected the desired version
    UNCONFIGURED = "unconfigured"  # central never issued a version for the store


class RolloutStore(BaseModel):
    store_id: str
    name: str
    region: str
    state: RolloutState
    desired_version: int | None
    desired_hash: str | None
    issued_at: datetime | None
    applied_version: int | None  # what the store last said it runs
    last_result: str | None
    error: dict[str, Any] | None  # the store's ConfigProblem when failed
    acked_at: datetime | None  # when the store decided (its clock)


class RolloutRead(BaseModel):
    counts: dict[RolloutState, int]  # per state, over the region filter (before the state filter)
    stores: list[RolloutStore]
