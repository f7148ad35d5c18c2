"""Threshold scopes (thresholds domain service). Never commits.

A change (PUT, PATCH or DELETE on one scope target, or the per-store PUT of the device
scope) is planned in memory (`plan.plan`), refused whole when any problem is found, and
otherwise written in the caller's transaction: the scope rows, one chain-wide
`threshold_changes` version (author, time, reason, diff), and a new desired config version
(`store_config.service.issue`, with its DesiredConfig in the outbox) for each affected store
whose compiled override set changes. Changes are serialised: on PostgreSQL by an advisory
transaction lock, on SQLite by its one writer (central begins every transaction IMMEDIATE).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import and_, delete, func, or_, select, text
from sqlalchemy.orm import Session

from central.errors import NotFoundError
from central.store_config import service as store_config
from central.store_config.models import StoreConfigVersion
from central.store_config.service import InvalidConfigError
from central.stores.models import Device, Store
from central.thresholds.models import Scope, ThresholdChange, ThresholdOverride
from central.thresholds.plan import Edit, Plan, layers_of, plan
from central.thresholds.resolve import SHOWN, Target, chain_of, effective
from central.thresholds.schemas import EffectiveRule, FieldValue, Op, Problem, ScopeRead
from device_profiles import ProfileRegistry
from device_profiles.schema import DeviceProfile
from protocols.mqtt.messages import ConfigProblem, DeviceOverrides

CHANGE_LOCK_KEY = 0x5347_5448  # "SGTH": one threshold change at a time (PostgreSQL)


class InvalidThresholdsError(InvalidConfigError):
    """The change does not fit the profiles (HTTP 422): every problem, scope:target/rule/field."""

    def __init__(self, problems: Sequence[Problem]) -> None:
        first = problems[0]
        super().__init__(ConfigProblem(device_id=first.device_id, rule_code=first.rule_code, field=first.field,
                                       message=first.message))
        self.problems = list(problems)
        self.message = f"{first.where}: {first.message}" + (
            f" (and {len(problems) - 1} more problems)" if len(problems) > 1 else "")
        self.args = (self.message,)
        self.details["problems"] = [p.model_dump(mode="json") for p in problems]


def lock(session: Session) -> None:
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": CHANGE_LOCK_KEY})


def dry_run(*, session: Session, edit: Edit, profiles: ProfileRegistry) -> Plan:
    return plan(session=session, edits=[edit], profiles=profiles)


def apply(*, session: Session, edit: Edit, request: Mapping[str, Any], author: str, reason: str, now: datetime,
          profiles: ProfileRegistry) -> ThresholdChange | None:
    """The new change version, or None when the change changes nothing."""
    lock(session)
    planned = plan(session=session, edits=[edit], profiles=profiles)
    return _write(session=session, planned=planned, request=request, author=author, reason=reason, now=now)


def put_store(*, session: Session, store_id: str, devices: DeviceOverrides, author: str, reason: str,
              now: datetime, profiles: ProfileRegistry) -> tuple[StoreConfigVersion, bool]:
    """The per-store PUT: `devices` becomes the store's whole device scope (a device left out
    loses its device-scope overrides; model and store scopes still apply), then the store's
    compiled set is issued. Returns the store's current version and whether it is new."""
    lock(session)
    if session.get(Store, store_id, with_for_update=True) is None:
        raise NotFoundError(f"no store {store_id!r}")
    known = store_config.known_devices(session=session, store_id=store_id)
    for device_id, rules in devices.items():  # the store PUT's own messages, device by device
        profile = store_config.device_profile(store_id=store_id, device_id=device_id, device=known.get(device_id),
                                              profiles=profiles)
        codes = {rule.code for rule in profile.rules}
        for code in rules:
            if code not in codes:
                raise InvalidConfigError(store_config.unknown_rule(profile, code).model_copy(
                    update={"device_id": device_id}))
    existing = session.scalars(select(ThresholdOverride.device_id).where(
        ThresholdOverride.scope == Scope.DEVICE, ThresholdOverride.store_id == store_id).distinct())
    edits = [Edit(Target.of_device(store_id, d), Op.PUT, dict(devices[d])) for d in sorted(devices)]
    edits += [Edit(Target.of_device(store_id, d), Op.DELETE) for d in sorted(set(existing) - set(devices))]
    planned = plan(session=session, edits=edits, profiles=profiles, push_stores=[store_id])
    request = {"op": "put", "store_id": store_id,
               "devices": {d: {c: p.model_dump(mode="json", exclude_none=True) for c, p in r.items()}
                           for d, r in devices.items()}}
    change = _write(session=session, planned=planned, request=request, author=author, reason=reason, now=now)
    version = store_config.current(session=session, store_id=store_id)
    assert version is not None  # a push always leaves a version
    issued = change is not None and any(s["store_id"] == store_id for s in change.stores)
    return version, issued


def _write(*, session: Session, planned: Plan, request: Mapping[str, Any], author: str, reason: str,
           now: datetime) -> ThresholdChange | None:
    if planned.problems:
        raise InvalidThresholdsError(planned.problems)
    pushes = [impact for impact in planned.impacts if impact.new_version]
    if not planned.diff and not pushes:
        return None
    number = (session.scalar(select(func.max(ThresholdChange.version))) or 0) + 1
    for target in planned.changed_targets:
        _store_rules(session, target, planned.after.rules(target), number, author, now)
    issued = []
    for impact in pushes:
        row, _created = store_config.issue(session=session, store_id=impact.store_id,
                                           devices=planned.compiled[impact.store_id], issued_by=author, now=now,
                                           first_even_if_empty=True)
        assert row is not None
        issued.append({"store_id": row.store_id, "version": row.version, "hash": row.hash})
    change = ThresholdChange(version=number, author=author[:64], created_at=now, reason=reason, request=dict(request),
                             diff=[entry.model_dump(mode="json") for entry in planned.diff], stores=issued)
    session.add(change)
    session.flush()
    return change


def _store_rules(session: Session, target: Target, rules: Mapping[str, Mapping[str, Any]], number: int,
                 author: str, now: datetime) -> None:
    """Make the target's rows exactly `rules`."""
    where = (ThresholdOverride.scope == target.scope, ThresholdOverride.model == target.model,
             ThresholdOverride.store_id == target.store_id, ThresholdOverride.device_id == target.device_id)
    rows = {row.rule_code: row for row in session.scalars(select(ThresholdOverride).where(*where))}
    gone = sorted(set(rows) - set(rules))
    if gone:
        session.execute(delete(ThresholdOverride).where(*where, ThresholdOverride.rule_code.in_(gone)))
    for code, params in rules.items():
        row = rows.get(code)
        if row is None:
            session.add(ThresholdOverride(scope=target.scope, model=target.model, store_id=target.store_id,
                                          device_id=target.device_id, rule_code=code, params=dict(params),
                                          change_version=number, updated_by=author[:64], updated_at=now))
        elif row.params != params:
            row.params, row.change_version, row.updated_by, row.updated_at = dict(params), number, author[:64], now
    session.flush()


def read_scope(*, session: Session, target: Target, profiles: ProfileRegistry) -> ScopeRead:
    """The target's own overrides and the effective values down to it, with their sources."""
    model = _model_of(session, target)
    profile = profiles.get(model) if model in profiles else None
    if not isinstance(profile, DeviceProfile):
        raise NotFoundError(f"central has no Modbus profile of device model {model!r}")
    chain = chain_of(target, model)
    rows = session.scalars(select(ThresholdOverride).where(*_in_chain(chain)))
    layers = layers_of(rows)
    rules = {}
    for rule in profile.rules:
        values = effective(rule, layers, chain)
        point = profile.point(rule.point)
        rules[rule.code] = EffectiveRule(
            type=rule.type.value, point=rule.point, unit=point.unit,
            plausible=(point.plausible.min, point.plausible.max) if point.plausible else None,
            fields={name: FieldValue(value=value, source=source) for name, (value, source) in values.items()
                    if name in SHOWN or value is not None})
    return ScopeRead(scope=target.scope, target=target.label, model=model or None, store_id=target.store_id or None,
                     device_id=target.device_id or None, overrides=layers.rules(target), effective=rules)


def _model_of(session: Session, target: Target) -> str:
    if target.store_id and session.get(Store, target.store_id) is None:
        raise NotFoundError(f"no store {target.store_id!r}")
    if target.scope is not Scope.DEVICE:
        return target.model
    device = session.get(Device, (target.store_id, target.device_id))
    if device is None:
        raise NotFoundError(f"no device {target.device_id!r} in store {target.store_id!r}")
    if not device.model:
        raise NotFoundError(f"the model of device {target.device_id!r} is not known yet")
    return device.model


def _in_chain(chain: Sequence[Target]) -> tuple[Any, ...]:
    return (or_(*(and_(ThresholdOverride.scope == t.scope, ThresholdOverride.model == t.model,
                       ThresholdOverride.store_id == t.store_id, ThresholdOverride.device_id == t.device_id)
                  for t in chain)),)


def changes(*, session: Session, limit: int, before: int | None = None) -> list[ThresholdChange]:
    query = select(ThresholdChange).order_by(ThresholdChange.version.desc()).limit(limit)
    if before is not None:
        query = query.where(ThresholdChange.version < before)
    return list(session.scalars(query))


def get_change(*, session: Session, version: int) -> ThresholdChange:
    change = session.get(ThresholdChange, version)
    if change is None:
        raise NotFoundError(f"no threshold change {version}")
    return change
