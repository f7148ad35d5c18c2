"""What a threshold change would do (thresholds domain service: reads, never writes).

`plan()` loads the scopes a change touches, applies it in memory and works out the diff per
scope field, every affected device's effective values before and after, the problems
(validated against the profiles: rule codes, the merged rule, plausible ranges), and each
affected store's compiled override set and whether its hash differs from the store's current
desired version. The dry run returns it; `service.apply` writes it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from central.errors import NotFoundError
from central.store_config import service as store_config
from central.store_config.service import InvalidConfigError
from central.stores.models import Device, Store
from central.thresholds.models import Scope, ThresholdOverride
from central.thresholds.resolve import (
    FIELDS,
    DeviceRef,
    Layers,
    Params,
    RuleSet,
    Target,
    chain_of,
    check_rule,
    compile_device,
    effective,
    merged,
    params_of,
)
from central.thresholds.schemas import (
    DeviceImpact,
    DiffEntry,
    EffectiveChange,
    Op,
    Problem,
    StoreImpact,
)
from device_profiles import ProfileRegistry
from device_profiles.schema import DeviceProfile
from protocols.mqtt.messages import ConfigProblem, DeviceOverrides, RuleParameters, config_hash

EMPTY_HASH = config_hash({})


@dataclass(frozen=True)
class Edit:
    """One operation on one scope target."""

    target: Target
    op: Op
    rules: Mapping[str, RuleParameters | None] = field(default_factory=dict)


@dataclass
class Plan:
    edits: Sequence[Edit]
    before: Layers
    after: Layers
    diff: list[DiffEntry]
    problems: list[Problem]
    impacts: list[StoreImpact]
    compiled: dict[str, DeviceOverrides]  # store id -> its override set after the change

    @property
    def changed_targets(self) -> list[Target]:
        return sorted({e.target for e in self.edits if self.before.rules(e.target) != self.after.rules(e.target)})


def plan(*, session: Session, edits: Sequence[Edit], profiles: ProfileRegistry,
         push_stores: Iterable[str] = ()) -> Plan:
    """`push_stores`: stores whose compiled set is issued even when it is empty and they have
    no version yet (the per-store PUT, an explicit push)."""
    problems: list[Problem] = []
    targets = [_check_target(session, e.target, profiles, problems) for e in edits]
    stores = {e.target.store_id for e in edits if e.target.store_id} | set(push_stores)
    models = {e.target.model for e in edits if e.target.scope is Scope.MODEL}
    if models:
        stores |= set(session.scalars(select(Device.store_id).where(Device.model.in_(models)).distinct()))
    devices = _devices(session, stores)
    before = _load_layers(session, stores, {d.model for d in devices} | {t.model for t in targets if t.model})
    after = before
    diff: list[DiffEntry] = []
    for edit, checked in zip(edits, targets, strict=True):
        old = before.rules(edit.target)
        new = _edited(old, edit)
        profile = profiles.get(checked.model) if checked.model in profiles else None
        if isinstance(profile, DeviceProfile):
            _check_codes(profile, edit, new, problems)
        after = after.with_rules(edit.target, new)
        diff += _diff(edit.target, old, new)
    for edit, checked in zip(edits, targets, strict=True):
        _check_chain(profiles, after, edit.target, checked.model, problems)
    inherited: list[Problem] = []
    impacts, compiled = _impacts(session, devices, {e.target for e in edits}, before, after, profiles, inherited,
                                 set(push_stores))
    # a device failing exactly as the target does is the same problem, not one more per device
    same = {(p.rule_code, p.field, p.message) for p in problems}
    problems += [p for p in inherited if (p.rule_code, p.field, p.message) not in same]
    return Plan(edits=edits, before=before, after=after, diff=diff, problems=_unique(problems), impacts=impacts,
                compiled=compiled)


@dataclass(frozen=True)
class _Checked:
    model: str  # the model whose profile the target's rules belong to ("" when unknown)


def _check_target(session: Session, target: Target, profiles: ProfileRegistry, problems: list[Problem]) -> _Checked:
    if target.store_id and session.get(Store, target.store_id) is None:
        raise NotFoundError(f"no store {target.store_id!r}")
    if target.scope is Scope.DEVICE:
        device = session.get(Device, (target.store_id, target.device_id))
        try:
            store_config.device_profile(store_id=target.store_id, device_id=target.device_id, device=device,
                                        profiles=profiles)
        except InvalidConfigError as exc:
            problems.append(_problem(target, exc.problem, model=device.model if device else None))
            return _Checked("")
        assert device is not None
        return _Checked(device.model)
    profile = profiles.get(target.model) if target.model in profiles else None
    if not isinstance(profile, DeviceProfile):
        reason = "central has no profile of it" if profile is None else "a serial peripheral's conditions are " \
                                                                         "not configured from central"
        problems.append(_problem(target, ConfigProblem(message=f"device model {target.model!r}: {reason}")))
        return _Checked("")
    return _Checked(target.model)


def _check_codes(profile: DeviceProfile, edit: Edit, new: RuleSet, problems: list[Problem]) -> None:
    codes = {rule.code for rule in profile.rules}
    for code in sorted(set(edit.rules) | set(new)):
        if code not in codes:
            problems.append(_problem(edit.target, store_config.unknown_rule(profile, code), model=profile.model))


def _check_chain(profiles: ProfileRegistry, layers: Layers, target: Target, model: str,
                 problems: list[Problem]) -> None:
    """The target's own chain (profile <- ... <- target), even where no device has that model yet."""
    if not model:
        return
    profile = profiles.get(model)
    assert isinstance(profile, DeviceProfile)
    chain = chain_of(target, model)
    for rule in profile.rules:
        fields = merged(layers, chain, rule.code)
        problem = check_rule(profile, rule, fields) if fields else None
        if problem is not None:
            problems.append(_problem(target, problem, model=model))


def _edited(old: RuleSet, edit: Edit) -> RuleSet:
    """The target's overrides after the edit."""
    if edit.op is Op.PUT:
        return {code: params_of(p) for code, p in edit.rules.items() if p is not None and params_of(p)}
    if edit.op is Op.DELETE:
        return {code: p for code, p in old.items() if edit.rules and code not in edit.rules}
    new = {code: dict(p) for code, p in old.items()}
    for code, params in edit.rules.items():
        if params is None:
            new.pop(code, None)
            continue
        fields = new.setdefault(code, {})
        for name in params.model_fields_set:
            value = getattr(params, name)
            if value is None:
                fields.pop(name, None)
            else:
                fields[name] = params_of(params)[name]
    return {code: p for code, p in new.items() if p}


def _diff(target: Target, old: RuleSet, new: RuleSet) -> list[DiffEntry]:
    entries = []
    for code in sorted(set(old) | set(new)):
        before, after = old.get(code, {}), new.get(code, {})
        for name in FIELDS:
            if before.get(name) != after.get(name):
                entries.append(DiffEntry(scope=target.scope, target=target.label, rule=code, field=name,
                                         old=before.get(name), new=after.get(name)))
    return entries


def _covers(target: Target, device: DeviceRef) -> bool:
    if target.scope is Scope.MODEL:
        return device.model == target.model
    if target.scope is Scope.STORE:
        return (device.store_id, device.model) == (target.store_id, target.model)
    return (device.store_id, device.device_id) == (target.store_id, target.device_id)


def _impacts(session: Session, devices: list[DeviceRef], targets: set[Target], before: Layers, after: Layers,
             profiles: ProfileRegistry, problems: list[Problem],
             push: set[str]) -> tuple[list[StoreImpact], dict[str, DeviceOverrides]]:
    """Per affected store: the devices whose effective values change, and the compiled set."""
    by_store: dict[str, list[DeviceImpact]] = {}
    compiled: dict[str, DeviceOverrides] = {}
    for device in devices:
        profile = profiles.get(device.model) if device.model in profiles else None
        if not isinstance(profile, DeviceProfile):
            continue
        sets = compiled.setdefault(device.store_id, {})
        rules = compile_device(profile, after, device)
        if rules:
            sets[device.device_id] = rules
        if not any(_covers(t, device) for t in targets):
            continue
        changes = _device_changes(profile, device, before, after, problems)
        if changes:
            by_store.setdefault(device.store_id, []).append(
                DeviceImpact(device_id=device.device_id, model=device.model, changes=changes))
    impacts = []
    for store_id in sorted(set(by_store) | push):
        store = session.get(Store, store_id)
        version = store_config.current(session=session, store_id=store_id)
        digest = config_hash(compiled.setdefault(store_id, {}))
        current = version.hash if version is not None else EMPTY_HASH
        impacts.append(StoreImpact(
            store_id=store_id, region=store.region if store is not None else "",
            current_version=version.version if version else None, current_hash=version.hash if version else None,
            compiled_hash=digest, new_version=digest != current or (version is None and store_id in push),
            devices=by_store.get(store_id, [])))
    return impacts, compiled


def _device_changes(profile: DeviceProfile, device: DeviceRef, before: Layers, after: Layers,
                    problems: list[Problem]) -> list[EffectiveChange]:
    chain = device.chain()
    target = chain[-1]
    changes: list[EffectiveChange] = []
    for rule in profile.rules:
        old, new = effective(rule, before, chain), effective(rule, after, chain)
        if old == new:
            continue
        for name in FIELDS:
            if old[name] != new[name]:
                changes.append(EffectiveChange(rule=rule.code, field=name, before=old[name][0], after=new[name][0],
                                               source_before=old[name][1], source_after=new[name][1]))
        fields = merged(after, chain, rule.code)
        problem = check_rule(profile, rule, fields) if fields else None
        if problem is not None:
            problems.append(_problem(target, problem, model=device.model))
    return changes


def _devices(session: Session, stores: set[str]) -> list[DeviceRef]:
    if not stores:
        return []
    rows = session.execute(select(Device.store_id, Device.device_id, Device.model)
                           .where(Device.store_id.in_(sorted(stores)))
                           .order_by(Device.store_id, Device.device_id))
    return [DeviceRef(store_id, device_id, model or "") for store_id, device_id, model in rows]


def _load_layers(session: Session, stores: set[str], models: set[str]) -> Layers:
    conditions = []
    if models:
        conditions.append((ThresholdOverride.scope == Scope.MODEL) & ThresholdOverride.model.in_(sorted(models)))
    if stores:
        conditions.append((ThresholdOverride.scope != Scope.MODEL) & ThresholdOverride.store_id.in_(sorted(stores)))
    if not conditions:
        return Layers()
    return layers_of(session.scalars(select(ThresholdOverride).where(or_(*conditions))))


def layers_of(rows: Iterable[ThresholdOverride]) -> Layers:
    grouped: dict[Target, dict[str, Params]] = {}
    for row in rows:
        target = Target(row.scope, model=row.model, store_id=row.store_id, device_id=row.device_id)
        grouped.setdefault(target, {})[row.rule_code] = dict(row.params)
    return Layers(grouped)


def _problem(target: Target, problem: ConfigProblem, *, model: str | None = None) -> Problem:
    return Problem(scope=target.scope, target=target.label, model=model or target.model or None,
                   store_id=target.store_id or None, device_id=target.device_id or None,
                   rule_code=problem.rule_code, field=problem.field, message=problem.message)


def _unique(problems: list[Problem]) -> list[Problem]:
    seen: set[tuple[str, str]] = set()
    kept = []
    for problem in problems:
        key = (problem.where, problem.message)
        if key not in seen:
            seen.add(key)
            kept.append(problem)
    return kept
