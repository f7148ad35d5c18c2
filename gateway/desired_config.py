"""Desired configuration from central (gateway layer): validated, applied atomically, acknowledged.

Central publishes the store's full rule override set, retained, on `storeguard/v1/<store>/config`
(`DesiredConfig`: version + hash). The store's YAML overrides are the base; a pushed override
replaces the YAML one of the same device and rule (whole rule, not field by field: central
validated the profile's rule with its own override, and that is what runs). For each message:

* the version and hash the store runs already: nothing to do, ack `unchanged`;
* an older version than the one it runs (a late redelivery): ignored, ack `unchanged` with
  the active version;
* otherwise the whole set is validated against this store's devices and profiles (unknown
  device, unknown rule, limits that do not fit): any problem -> ack `rejected` naming the
  device, rule and field, nothing applied, the previous config stays;
* else the running edge is reconfigured at once (`Edge.reconfigure`: all devices' rules are
  built before any is swapped), the applied config is stored in the store database with its
  ack in one durable transaction, and the faults the new rules end are handed to the sink.

A restarted gateway applies the stored config before its edge runs (`DesiredConfigHandler.start`). Acks go
through the durable outbox as `config_ack` rows: sent with the faults, never evicted or
expired, a newer ack superseding an unsent older one.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol

from pydantic import BaseModel, ConfigDict, TypeAdapter, ValidationError

from device_profiles import ProfileRegistry
from device_profiles.schema import DeviceProfile, Rule
from edge.clock import Clock
from edge.config import DeviceConfig, EdgeConfig, RuleOverride
from edge.errors import EdgeConfigError
from edge.model import EdgeSink, FaultChange
from edge.rules import effective_rules
from gateway.errors import StorageError
from gateway.metrics import GatewayMetrics
from gateway.outbox import Outbox, OutboxKind
from gateway.storage import StoreDatabase
from protocols.mqtt.messages import (
    ConfigAck,
    ConfigProblem,
    ConfigResult,
    ContractError,
    DesiredConfig,
    DeviceOverrides,
    RuleParameters,
    config_hash,
    parse_message,
)
from protocols.mqtt.topics import TopicKind, topic

log = logging.getLogger(__name__)

Overrides = dict[str, dict[str, RuleOverride]]
_OVERRIDES: TypeAdapter[DeviceOverrides] = TypeAdapter(DeviceOverrides)


class Reconfigurable(Protocol):
    """What the running edge offers (`edge.runtime.Edge.reconfigure`)."""

    def reconfigure(self, overrides: Mapping[str, Mapping[str, RuleOverride]]) -> list[FaultChange]: ...


@dataclass(frozen=True, slots=True)
class AppliedConfig:
    version: int
    hash: str
    devices: DeviceOverrides
    issued_by: str
    applied_at: datetime


class ConfigStatusOut(BaseModel):
    """The store page's view of the pushed config (`GET /api/state` -> `config`)."""

    model_config = ConfigDict(frozen=True)

    active_version: int | None
    hash: str | None
    issued_by: str | None
    applied_at: datetime | None
    overridden_rules: int  # (device, rule) pairs central overrides
    last_version: int | None  # the last version answered
    last_result: ConfigResult | None
    last_error: ConfigProblem | None
    decided_at: datetime | None


# --- merging and validation (pure) -------------------------------------------------------------

def merged_overrides(base: EdgeConfig, pushed: DeviceOverrides) -> Overrides:
    """Every device's overrides: its YAML ones, each rule central pushed replacing the YAML one."""
    merged: Overrides = {}
    for bus in base.buses:
        for device in bus.devices:
            rules = dict(device.rules)
            for code, params in pushed.get(device.id, {}).items():
                rules[code] = RuleOverride(**params.model_dump(exclude_none=True))
            merged[device.id] = rules
    return merged


def with_overrides(base: EdgeConfig, overrides: Mapping[str, Mapping[str, RuleOverride]]) -> EdgeConfig:
    buses = [
        bus.model_copy(update={"devices": [
            device.model_copy(update={"rules": dict(overrides.get(device.id, device.rules))})
            for device in bus.devices
        ]})
        for bus in base.buses
    ]
    return base.model_copy(update={"buses": buses})


def find_problem(base: EdgeConfig, pushed: DeviceOverrides, registry: ProfileRegistry) -> ConfigProblem | None:
    """The first thing in `pushed` that does not fit this store, or None when all of it does."""
    devices = {device.id: device for bus in base.buses for device in bus.devices}
    merged = merged_overrides(base, pushed)
    for device_id, rules in pushed.items():
        device = devices.get(device_id)
        if device is None:
            return ConfigProblem(device_id=device_id, message=f"unknown device {device_id!r} in this store")
        profile = registry.get(device.profile) if device.profile in registry else None
        if not isinstance(profile, DeviceProfile):
            return ConfigProblem(device_id=device_id,
                                 message=f"device profile {device.profile!r} has no configurable rules here")
        problem = _rules_problem(profile, rules)
        if problem is not None:
            return problem.model_copy(update={"device_id": device_id})
        try:
            effective_rules(profile, DeviceConfig.model_validate({**device.model_dump(), "rules": merged[device_id]}))
        except (EdgeConfigError, ValidationError) as exc:
            return ConfigProblem(device_id=device_id, message=str(exc)[:500])
    return None


def _rules_problem(profile: DeviceProfile, rules: Mapping[str, RuleParameters]) -> ConfigProblem | None:
    by_code = {rule.code: rule for rule in profile.rules}
    for code, params in rules.items():
        rule = by_code.get(code)
        if rule is None:
            have = ", ".join(sorted(by_code)) or "none"
            return ConfigProblem(rule_code=code, message=f"profile {profile.model} has no rule {code!r} (has: {have})")
        try:
            Rule.model_validate({**rule.model_dump(), **params.model_dump(exclude_none=True)})
        except ValidationError as exc:
            first = exc.errors()[0]
            field = str(first["loc"][0]) if first["loc"] else next(
                (name for name in ("clear", "limit") if getattr(params, name) is not None), None)
            message = str(first["msg"]).removeprefix("Value error, ")[:500]
            return ConfigProblem(rule_code=code, field=field, message=message)
    return None


# --- persistence -------------------------------------------------------------------------------

class ConfigBook:
    """The applied config and the last outcome, in the store database (tables in gateway.storage)."""

    def __init__(self, db: StoreDatabase) -> None:
        self._db = db

    def applied(self) -> AppliedConfig | None:
        row = self._db.execute(
            "SELECT version, hash, devices, issued_by, applied_at FROM config_applied WHERE id = 1").fetchone()
        if row is None:
            return None
        version, digest, devices, issued_by, applied_at = row
        parsed = _OVERRIDES.validate_json(devices)
        if config_hash(parsed) != digest:  # a damaged row is not applied
            raise ValidationError.from_exception_data("config_applied", [
                {"type": "value_error", "loc": ("devices",), "input": devices,
                 "ctx": {"error": ValueError("the stored overrides do not match their hash")}}])
        return AppliedConfig(version, digest, parsed, issued_by, datetime.fromtimestamp(applied_at, UTC))

    def save(self, config: DesiredConfig, at: datetime) -> None:
        devices = {d: {c: p.model_dump(mode="json", exclude_none=True) for c, p in rules.items()}
                   for d, rules in config.devices.items()}
        self._db.execute(
            "INSERT INTO config_applied (id, version, hash, devices, issued_by, applied_at) VALUES (1, ?, ?, ?, ?, ?)"
            " ON CONFLICT(id) DO UPDATE SET version = excluded.version, hash = excluded.hash,"
            " devices = excluded.devices, issued_by = excluded.issued_by, applied_at = excluded.applied_at",
            (config.version, config.hash, json.dumps(devices), config.issued_by, at.timestamp()),
        )

    def forget(self) -> None:
        self._db.execute("DELETE FROM config_applied")

    def record(self, version: int, result: ConfigResult, error: ConfigProblem | None, at: datetime) -> None:
        self._db.execute(
            "INSERT INTO config_outcome (id, version, result, error, decided_at) VALUES (1, ?, ?, ?, ?)"
            " ON CONFLICT(id) DO UPDATE SET version = excluded.version, result = excluded.result,"
            " error = excluded.error, decided_at = excluded.decided_at",
            (version, result.value, error.model_dump_json() if error else None, at.timestamp()),
        )

    def status(self) -> ConfigStatusOut:
        try:
            applied = self.applied()
        except ValidationError:
            applied = None
        row = self._db.execute("SELECT version, result, error, decided_at FROM config_outcome WHERE id = 1").fetchone()
        return ConfigStatusOut(
            active_version=applied.version if applied else None, hash=applied.hash if applied else None,
            issued_by=applied.issued_by if applied else None, applied_at=applied.applied_at if applied else None,
            overridden_rules=sum(len(r) for r in applied.devices.values()) if applied else 0,
            last_version=row[0] if row else None, last_result=ConfigResult(row[1]) if row else None,
            last_error=ConfigProblem.model_validate_json(row[2]) if row and row[2] else None,
            decided_at=datetime.fromtimestamp(row[3], UTC) if row else None,
        )


# --- start-up and the handler ------------------------------------------------------------------

class DesiredConfigHandler:
    """Consumes the store's config topic; see the module docstring."""

    def __init__(self, *, store_id: str, base: EdgeConfig, registry: ProfileRegistry, db: StoreDatabase,
                 outbox: Outbox, sink: EdgeSink, clock: Clock, metrics: GatewayMetrics,
                 on_enqueued: Callable[[], None] = lambda: None) -> None:
        self.topic = topic(store_id, TopicKind.CONFIG)
        self._ack_topic = topic(store_id, TopicKind.CONFIG_ACK)
        self._store_id = store_id
        self._base = base
        self._registry = registry
        self._db = db
        self._book = ConfigBook(db)
        self._outbox = outbox
        self._sink = sink
        self._clock = clock
        self._target: Reconfigurable | None = None
        self._on_enqueued = on_enqueued
        self._metrics = metrics  # config_rejected: malformed messages by ContractError reason
        self._logged: set[str] = set()

    def start(self) -> EdgeConfig:
        """The edge config to start with: the YAML one plus the stored pushed config when it
        still fits this store. When it does not (the YAML or a profile changed meanwhile) it is
        dropped and central told so, and the retained message is judged afresh on connect."""
        try:
            applied = self._book.applied()
        except ValidationError as exc:
            log.error("the stored desired config is unreadable; starting without it: %s", exc.errors()[0]["msg"])
            self._book.forget()
            return self._base
        if applied is None:
            return self._base
        problem = find_problem(self._base, applied.devices, self._registry)
        if problem is not None:
            log.error("the stored desired config v%d no longer fits this store (%s); starting without it",
                      applied.version, problem.message)
            with self._db.transaction():
                self._book.forget()
                desired = DesiredConfig.model_construct(store_id=self._store_id, version=applied.version,
                                                        hash=applied.hash)
                self._answer(desired, ConfigResult.REJECTED, None, problem)
            return self._base
        log.info("applying desired config v%d from central (issued by %s)", applied.version,
                 applied.issued_by or "?")
        return with_overrides(self._base, merged_overrides(self._base, applied.devices))

    def attach(self, target: Reconfigurable | None) -> None:
        """The running edge; without one (an edge that cannot reconfigure) every new version is rejected."""
        self._target = target

    def status(self) -> ConfigStatusOut:
        return self._book.status()

    async def handle(self, payload: bytes) -> bool:
        """Act on one message; True when the broker may forget it (False: leave it for redelivery)."""
        try:
            message = parse_message(self.topic, payload)
            if not isinstance(message, DesiredConfig):
                raise ContractError("unexpected_kind", f"{type(message).__name__} on {self.topic!r}")
        except ContractError as exc:
            self._metrics.config_rejected[exc.reason] += 1
            level = logging.DEBUG if exc.reason in self._logged else logging.WARNING
            self._logged.add(exc.reason)
            log.log(level, "rejected a desired config message (%s): %s", exc.reason, exc.detail)
            return True
        try:
            return await self._handle(message)
        except StorageError:
            log.exception("desired config v%d could not be handled; left for redelivery", message.version)
            return False

    async def _handle(self, desired: DesiredConfig) -> bool:
        try:
            active = self._book.applied()
        except ValidationError:  # a damaged row: judge the message as if nothing were applied
            active = None
        if active is not None and desired.version == active.version and desired.hash == active.hash:
            return self._answer(desired, ConfigResult.UNCHANGED, active.version)
        if active is not None and desired.version < active.version:
            log.info("ignoring desired config v%d: v%d runs already", desired.version, active.version)
            return self._answer(desired, ConfigResult.UNCHANGED, active.version)
        current = active.version if active is not None else None
        problem = find_problem(self._base, desired.devices, self._registry)
        if problem is None and self._target is None:
            problem = ConfigProblem(message="this store's edge cannot be reconfigured while it runs")
        if problem is not None:
            return self._reject(desired, problem, current)
        assert self._target is not None
        previous = merged_overrides(self._base, active.devices if active is not None else {})
        wanted = merged_overrides(self._base, desired.devices)
        changed = {device_id: rules for device_id, rules in wanted.items() if rules != previous.get(device_id)}
        try:
            changes = self._target.reconfigure(changed)  # only the devices whose overrides change
        except EdgeConfigError as exc:  # the edge applied nothing
            return self._reject(desired, ConfigProblem(message=str(exc)[:500]), current)
        try:
            with self._db.transaction(durable=True):
                self._book.save(desired, self._clock.now())
                self._answer(desired, ConfigResult.APPLIED, desired.version, notify=False)
        except StorageError:
            self._target.reconfigure({device_id: previous[device_id] for device_id in changed})  # roll back
            raise
        log.info("applied desired config v%d from central (issued by %s)", desired.version, desired.issued_by or "?")
        for change in changes:  # faults the new rules ended, like any other change
            await self._sink.fault_changed(change)
        self._on_enqueued()
        return True

    def _reject(self, desired: DesiredConfig, problem: ConfigProblem, current: int | None) -> bool:
        where = "/".join(p for p in (problem.device_id, problem.rule_code, problem.field) if p)
        log.warning("rejected desired config v%d (%s%s); the previous config stays", desired.version,
                    f"{where}: " if where else "", problem.message)
        return self._answer(desired, ConfigResult.REJECTED, current, problem)

    def _answer(self, desired: DesiredConfig, result: ConfigResult, active: int | None,
                problem: ConfigProblem | None = None, *, notify: bool = True) -> bool:
        now = self._clock.now()
        ack = ConfigAck(store_id=self._store_id, version=desired.version, hash=desired.hash, result=result,
                        error=problem, applied_at=now, active_version=active, sent_at=now)
        with self._db.transaction():
            self._book.record(desired.version, result, problem, now)
            self._outbox.put(OutboxKind.CONFIG_ACK, self._ack_topic, ack.to_bytes(), qos=1, supersede=True)
        if notify:
            self._on_enqueued()
        return True
