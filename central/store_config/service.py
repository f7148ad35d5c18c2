"""Desired store configuration (store_config domain service). Never commits.

A PUT of a store's full override set is validated against what central knows of the store:
each device must be known (from its fault events or health messages) with a model central
has a profile of, each rule code must exist in that profile, and the profile's rule merged
with the override must still be a valid rule (e.g. a high limit's clear level not above the
limit). A set identical to the current version (same hash) makes no new version. A new
version is written with its DesiredConfig in the outbox, in the caller's transaction; the
publisher sends it retained, so a store that is offline now gets it when it reconnects.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from pydantic import ValidationError
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from central.errors import CentralError, NotFoundError
from central.outbox import service as outbox
from central.store_config.models import StoreConfigAck, StoreConfigVersion
from central.stores.models import Device, Store
from device_profiles import ProfileRegistry
from device_profiles.schema import DeviceProfile, Rule
from protocols.mqtt.messages import ConfigAck, ConfigProblem, DesiredConfig, DeviceOverrides, RuleParameters, config_hash
from protocols.mqtt.topics import TopicKind, topic


class InvalidConfigError(CentralError):
    """The override set does not fit the store (HTTP 422); `problem` says where and why."""

    code = "invalid_config"

    def __init__(self, problem: ConfigProblem) -> None:
        self.problem = problem
        self.details: dict[str, Any] = {"problem": problem.model_dump(mode="json")}  # added to the HTTP body
        where = "/".join(part for part in (problem.device_id, problem.rule_code, problem.field) if part)
        super().__init__(f"{where}: {problem.message}" if where else problem.message)


def normalized(devices: DeviceOverrides) -> DeviceOverrides:
    """Without overrides that change nothing, and without devices left with none."""
    kept: DeviceOverrides = {}
    for device_id, rules in devices.items():
        set_rules = {code: params for code, params in rules.items() if params.model_dump(exclude_none=True)}
        if set_rules:
            kept[device_id] = set_rules
    return kept


def validate(*, session: Session, store_id: str, devices: DeviceOverrides, profiles: ProfileRegistry) -> None:
    """Raise InvalidConfigError naming the first device, rule or field that does not fit."""
    known = known_devices(session=session, store_id=store_id)
    for device_id, rules in devices.items():
        profile = device_profile(store_id=store_id, device_id=device_id, device=known.get(device_id),
                                 profiles=profiles)
        by_code = {rule.code: rule for rule in profile.rules}
        for code, params in rules.items():
            rule = by_code.get(code)
            if rule is None:
                raise InvalidConfigError(unknown_rule(profile, code).model_copy(update={"device_id": device_id}))
            problem = rule_problem(rule, params)
            if problem is not None:
                raise InvalidConfigError(problem.model_copy(update={"device_id": device_id}))


def known_devices(*, session: Session, store_id: str) -> dict[str, Device]:
    return {d.device_id: d for d in session.scalars(select(Device).where(Device.store_id == store_id))}


def device_profile(*, store_id: str, device_id: str, device: Device | None,
                   profiles: ProfileRegistry) -> DeviceProfile:
    """The Modbus profile of a device central may configure; InvalidConfigError saying why not."""
    if device is None:
        raise InvalidConfigError(ConfigProblem(
            device_id=device_id, message=f"unknown device {device_id!r} in store {store_id!r}"))
    if not device.model:
        raise InvalidConfigError(ConfigProblem(
            device_id=device_id, message=f"the model of device {device_id!r} is not known yet (no health "
                                         "message or fault event has named it)"))
    if device.model not in profiles:
        raise InvalidConfigError(ConfigProblem(
            device_id=device_id, message=f"unknown device model {device.model!r}: central has no profile of it"))
    profile = profiles.get(device.model)
    if not isinstance(profile, DeviceProfile):
        raise InvalidConfigError(ConfigProblem(
            device_id=device_id, message=f"device model {device.model!r} is a serial peripheral: its "
                                         "conditions are not configured from central"))
    return profile


def unknown_rule(profile: DeviceProfile, code: str) -> ConfigProblem:
    have = ", ".join(sorted(rule.code for rule in profile.rules)) or "none"
    return ConfigProblem(rule_code=code, message=f"profile {profile.model} has no rule {code!r} (it has: {have})")


def rule_problem(rule: Rule, params: RuleParameters) -> ConfigProblem | None:
    """Why the profile's rule with these parameters is not a valid rule, or None."""
    merged = {**rule.model_dump(), **params.model_dump(exclude_none=True)}
    try:
        Rule.model_validate(merged)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = str(first["loc"][0]) if first["loc"] else _limit_field(params)
        message = str(first["msg"]).removeprefix("Value error, ")
        return ConfigProblem(rule_code=rule.code, field=field, message=message[:500])
    return None


def _limit_field(params: RuleParameters) -> str | None:
    """A rule-level failure is about its levels: blame the one the override set."""
    return next((name for name in ("clear", "limit") if getattr(params, name) is not None), None)


def current(*, session: Session, store_id: str) -> StoreConfigVersion | None:
    query = (select(StoreConfigVersion).where(StoreConfigVersion.store_id == store_id)
             .order_by(StoreConfigVersion.version.desc()).limit(1))
    return session.scalars(query).first()


def last_ack(*, session: Session, store_id: str) -> StoreConfigAck | None:
    return session.get(StoreConfigAck, store_id)


def put(*, session: Session, store_id: str, devices: DeviceOverrides, issued_by: str, now: datetime,
        profiles: ProfileRegistry) -> tuple[StoreConfigVersion, bool]:
    """The store's current version after this PUT, and whether it is a new one.

    The low-level push of a compiled set, validated against the profiles alone; the HTTP PUT
    goes through `central.thresholds` (device-scope overrides merged with the model and store
    scopes), which ends in `issue`."""
    if session.get(Store, store_id, with_for_update=True) is None:  # one new version at a time per store
        raise NotFoundError(f"no store {store_id!r}")
    validate(session=session, store_id=store_id, devices=devices, profiles=profiles)
    row, created = issue(session=session, store_id=store_id, devices=devices, issued_by=issued_by, now=now,
                         first_even_if_empty=True)
    assert row is not None
    return row, created


def issue(*, session: Session, store_id: str, devices: DeviceOverrides, issued_by: str, now: datetime,
          first_even_if_empty: bool = False) -> tuple[StoreConfigVersion | None, bool]:
    """Make `devices` (validated) the store's desired set: a new version and its DesiredConfig in
    the outbox, unless its hash is the current version's. Without a version yet the store runs
    no override of central: an empty set makes a version only when `first_even_if_empty`.
    Returns the current version after this (None: still none) and whether it is new."""
    session.get(Store, store_id, with_for_update=True)  # one new version at a time per store
    devices = normalized(devices)
    digest = config_hash(devices)
    latest = current(session=session, store_id=store_id)
    if latest is not None and latest.hash == digest:
        return latest, False
    if latest is None and not devices and not first_even_if_empty:
        return None, False
    version = _next_version(session, store_id)
    message = DesiredConfig(store_id=store_id, version=version, hash=digest, issued_at=now,
                            issued_by=issued_by[:64], devices=devices, sent_at=now)
    row = StoreConfigVersion(store_id=store_id, version=version, hash=digest, devices=_plain(devices),
                             issued_by=issued_by[:64], issued_at=now, message_id=message.message_id)
    session.add(row)
    outbox.enqueue(session=session, message=message, topic=topic(store_id, TopicKind.CONFIG), now=now)
    session.flush()
    return row, True


def republish_unsynced(*, session: Session, now: datetime) -> int:
    """Queue the newest version again for every store that does not run it yet; returns how many.

    The retained copy on the broker is what a store that was offline picks up; a broker that
    restarted without persistence has lost it. Central calls this whenever its publisher
    (re)connects. A store answers a repeat of what it runs with an `unchanged` ack."""
    newest = (select(StoreConfigVersion.store_id, func.max(StoreConfigVersion.version).label("version"))
              .group_by(StoreConfigVersion.store_id).subquery())
    rows = session.scalars(select(StoreConfigVersion).join(
        newest, (StoreConfigVersion.store_id == newest.c.store_id) & (StoreConfigVersion.version == newest.c.version)))
    queued = 0
    for row in rows:
        ack = last_ack(session=session, store_id=row.store_id)
        if ack is not None and ack.active_version == row.version:
            continue
        devices = {device_id: {code: RuleParameters.model_validate(params) for code, params in rules.items()}
                   for device_id, rules in row.devices.items()}
        message = DesiredConfig(store_id=row.store_id, version=row.version, hash=row.hash, issued_at=row.issued_at,
                                issued_by=row.issued_by, devices=devices, sent_at=now)
        outbox.enqueue(session=session, message=message, topic=topic(row.store_id, TopicKind.CONFIG), now=now)
        queued += 1
    return queued


def _next_version(session: Session, store_id: str) -> int:
    """Above every version central issued and every version the store says it runs (a store
    ignores versions older than its own, e.g. after central's database was restored)."""
    issued = session.scalar(select(func.max(StoreConfigVersion.version))
                            .where(StoreConfigVersion.store_id == store_id)) or 0
    ack = last_ack(session=session, store_id=store_id)
    reported = (ack.active_version or 0) if ack is not None else 0
    return max(issued, reported) + 1


def _plain(devices: Mapping[str, Mapping[str, RuleParameters]]) -> dict[str, dict[str, dict[str, object]]]:
    return {device_id: {code: params.model_dump(mode="json", exclude_none=True) for code, params in rules.items()}
            for device_id, rules in devices.items()}


def record_ack(*, session: Session, ack: ConfigAck, now: datetime) -> bool:
    """Keep the store's newest ack; False when a newer one was recorded already (late redelivery)."""
    row = session.get(StoreConfigAck, ack.store_id, with_for_update=True, populate_existing=True)
    if row is None:
        row = StoreConfigAck(store_id=ack.store_id)
        session.add(row)
    elif row.applied_at > ack.applied_at:
        return False
    row.version = ack.version
    row.hash = ack.hash
    row.result = ack.result
    row.error = ack.error.model_dump(mode="json") if ack.error is not None else None
    row.active_version = ack.active_version
    row.applied_at = ack.applied_at
    row.received_at = now
    row.message_id = ack.message_id
    return True
