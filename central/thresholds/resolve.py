"""Inheritance of rule parameters (thresholds domain: pure functions, no database).

The effective parameters of a device's rule are the profile's rule, then the model scope,
then the store scope (that model in that store), then the device scope, field by field: a
scope sets only the fields it names and the last one naming a field wins. `Layers` holds the
overrides of every scope target as plain dicts, so a change can be tried out in memory (the
dry run) with the same code that compiles the stores' desired configurations.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from central.store_config.service import rule_problem
from central.thresholds.models import Scope
from device_profiles.schema import DeviceProfile, Rule, RuleType
from protocols.mqtt.messages import ConfigProblem, RuleParameters

FIELDS: tuple[str, ...] = tuple(RuleParameters.model_fields)  # limit, clear, delay_s, clear_delay_s, enabled, ...
SHOWN = ("limit", "clear", "delay_s", "clear_delay_s", "enabled")  # always listed in effective views
ABSOLUTE_LEVELS = (RuleType.HIGH_LIMIT, RuleType.LOW_LIMIT)  # creep/rate limits are rises, not levels

Params = dict[str, Any]  # the fields one scope sets for one rule
RuleSet = dict[str, Params]  # rule code -> params


class Source(StrEnum):
    """Where an effective value comes from."""

    PROFILE = "profile"
    MODEL = "model"
    STORE = "store"
    DEVICE = "device"


@dataclass(frozen=True, order=True)
class Target:
    """What one scope's overrides apply to; the parts a scope does not use are ""."""

    scope: Scope
    model: str = ""
    store_id: str = ""
    device_id: str = ""

    @classmethod
    def of_model(cls, model: str) -> Target:
        return cls(Scope.MODEL, model=model)

    @classmethod
    def of_store(cls, store_id: str, model: str) -> Target:
        return cls(Scope.STORE, model=model, store_id=store_id)

    @classmethod
    def of_device(cls, store_id: str, device_id: str) -> Target:
        return cls(Scope.DEVICE, store_id=store_id, device_id=device_id)

    @property
    def label(self) -> str:
        """model: `m`; store: `s/m`; device: `s/d`."""
        if self.scope is Scope.MODEL:
            return self.model
        if self.scope is Scope.STORE:
            return f"{self.store_id}/{self.model}"
        return f"{self.store_id}/{self.device_id}"


@dataclass(frozen=True)
class DeviceRef:
    """A device central knows, with the model it last reported."""

    store_id: str
    device_id: str
    model: str

    def chain(self) -> tuple[Target, Target, Target]:
        return (Target.of_model(self.model), Target.of_store(self.store_id, self.model),
                Target.of_device(self.store_id, self.device_id))


_SOURCE_OF = {Scope.MODEL: Source.MODEL, Scope.STORE: Source.STORE, Scope.DEVICE: Source.DEVICE}


class Layers:
    """The overrides of many scope targets: target -> {rule code: {field: value}}."""

    def __init__(self, rows: Mapping[Target, Mapping[str, Mapping[str, Any]]] | None = None) -> None:
        self._rows: dict[Target, RuleSet] = {t: {c: dict(p) for c, p in rules.items() if p}
                                             for t, rules in (rows or {}).items()}

    def rules(self, target: Target) -> RuleSet:
        return {code: dict(params) for code, params in self._rows.get(target, {}).items()}

    def with_rules(self, target: Target, rules: Mapping[str, Params]) -> Layers:
        """A copy with `target`'s overrides replaced by `rules`."""
        copy = Layers(self._rows)
        copy._rows[target] = {code: dict(params) for code, params in rules.items() if params}
        return copy

    def targets(self) -> list[Target]:
        return sorted(self._rows)


def chain_of(target: Target, model: str) -> tuple[Target, ...]:
    """The scopes from the model down to `target` (a device target needs the device's model)."""
    if target.scope is Scope.MODEL:
        return (target,)
    if target.scope is Scope.STORE:
        return (Target.of_model(model), target)
    return DeviceRef(target.store_id, target.device_id, model).chain()


def merged(layers: Layers, chain: Iterable[Target], code: str) -> Params:
    """The fields the scopes of `chain` set for rule `code`, the later scope winning."""
    fields: Params = {}
    for target in chain:
        fields.update(layers.rules(target).get(code, {}))
    return fields


def effective(rule: Rule, layers: Layers, chain: Iterable[Target]) -> dict[str, tuple[Any, Source]]:
    """Every field's effective value and where it comes from."""
    values: dict[str, tuple[Any, Source]] = {name: (getattr(rule, name), Source.PROFILE) for name in FIELDS}
    for target in chain:
        for name, value in layers.rules(target).get(rule.code, {}).items():
            values[name] = (value, _SOURCE_OF[target.scope])
    return values


def compile_device(profile: DeviceProfile, layers: Layers, device: DeviceRef) -> dict[str, RuleParameters]:
    """The override set of one device for its store: each profile rule some scope overrides,
    with the merged fields (fields no scope sets keep the profile's value at the store)."""
    chain = device.chain()
    compiled: dict[str, RuleParameters] = {}
    for rule in profile.rules:
        fields = merged(layers, chain, rule.code)
        if fields:
            compiled[rule.code] = RuleParameters.model_validate(fields)
    return compiled


def check_rule(profile: DeviceProfile, rule: Rule, fields: Params) -> ConfigProblem | None:
    """Why the profile's rule with these merged fields is not a valid rule, or None: the rule
    schema (levels on the right side, delays in range, fields the rule type takes), then the
    plausible range of the rule's point for absolute levels."""
    params = RuleParameters.model_validate(fields)
    problem = rule_problem(rule, params)
    if problem is not None:
        return problem
    point = next((p for p in profile.points if p.name == rule.point), None)
    if point is None or point.plausible is None or rule.type not in ABSOLUTE_LEVELS:
        return None
    unit = f" {point.unit}" if point.unit else ""
    for name in ("limit", "clear"):
        value = fields.get(name)
        if value is not None and not point.plausible.min <= value <= point.plausible.max:
            return ConfigProblem(
                rule_code=rule.code, field=name,
                message=f"{name} {value}{unit} is outside the plausible range of point {point.name} "
                        f"({point.plausible.min} to {point.plausible.max}{unit})")
    return None


def params_of(model: RuleParameters) -> Params:
    return model.model_dump(mode="json", exclude_none=True)
