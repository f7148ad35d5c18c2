"""What goes into the HACCP temperature log (telemetry domain, pure: no database, no clock).

A device is logged when its profile's kind is ``refrigeration_controller``. Its logged
probes are the points in °C whose role is a food-relevant air or product temperature
(``air_temperature``, ``air_on_temperature``, ``product_temperature``); evaporator, condenser
and setpoint points are not food temperatures. A probe's high limit is the ``limit`` of the
profile's high_limit rule on that point, replaced by central's override of that rule for
the device when one is set; a probe with no such rule has no limit (never "above limit").

Per poll (one telemetry batch) the device's other points say whether it was defrosting
(role ``defrost_active`` true, or a ``controller_state`` in a defrost state), whether the door
was open (``door_open`` / ``door_alarm`` true, or a ``controller_state`` of ``door_open``) and
whether the controller reported its air probe faulty (``probe_alarm`` true, ``probe_status``
other than ``ok``), in addition to a reading of bad quality.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from device_profiles.schema import DeviceProfile, RuleType
from protocols.mqtt.messages import Quality, TelemetryPoint

REFRIGERATION_KIND = "refrigeration_controller"
CELSIUS = "°C"
PROBE_ROLES = frozenset({"air_temperature", "air_on_temperature", "product_temperature"})
PRIMARY_ROLE = "air_temperature"  # controller probe alarms are about this probe
DEFROST_ROLES = frozenset({"defrost_active"})
DOOR_ROLES = frozenset({"door_open", "door_alarm"})
PROBE_ALARM_ROLES = frozenset({"probe_alarm"})
PROBE_STATUS_ROLES = frozenset({"probe_status"})  # an enum: anything but "ok" is a fault
STATE_ROLES = frozenset({"controller_state"})
DEFROST_STATES = frozenset({"defrost", "drip_off", "melt", "hold_after_defrost"})
DOOR_STATES = frozenset({"door_open"})
PROBE_OK_STATES = frozenset({"ok"})


@dataclass(frozen=True, slots=True)
class Probe:
    point: str
    limit: float | None  # the profile's high limit of this point (None: no high_limit rule)
    rule_code: str | None  # that rule, so central's override of it can replace the limit
    primary: bool


@dataclass(frozen=True, slots=True)
class HaccpSpec:
    """The logged probes of one device model and the points that annotate them."""

    probes: tuple[Probe, ...]
    defrost_points: frozenset[str]
    door_points: frozenset[str]
    probe_alarm_points: frozenset[str]
    probe_status_points: frozenset[str]
    state_points: frozenset[str]

    def probe(self, point: str) -> Probe | None:
        return next((p for p in self.probes if p.point == point), None)


def spec_for(profile: object) -> HaccpSpec | None:
    """The HACCP spec of a device profile, or None when the device is not logged."""
    if not isinstance(profile, DeviceProfile) or profile.kind != REFRIGERATION_KIND:
        return None
    high_rules = {r.point: r for r in profile.rules if r.type is RuleType.HIGH_LIMIT}
    probes = []
    for point in profile.points:
        if point.unit != CELSIUS or point.role not in PROBE_ROLES:
            continue
        rule = high_rules.get(point.name)
        probes.append(Probe(point=point.name, limit=rule.limit if rule else None, rule_code=rule.code if rule else None,
                            primary=point.role == PRIMARY_ROLE))
    if not probes:
        return None

    def with_roles(roles: frozenset[str]) -> frozenset[str]:
        return frozenset(p.name for p in profile.points if p.role in roles)

    return HaccpSpec(probes=tuple(probes), defrost_points=with_roles(DEFROST_ROLES), door_points=with_roles(DOOR_ROLES),
                     probe_alarm_points=with_roles(PROBE_ALARM_ROLES),
                     probe_status_points=with_roles(PROBE_STATUS_ROLES), state_points=with_roles(STATE_ROLES))


def interval_start(at: datetime, interval_s: int) -> datetime:
    """The start of the fixed interval holding `at` (intervals are aligned to the Unix epoch, in UTC)."""
    seconds = int(at.timestamp() // interval_s) * interval_s
    return datetime.fromtimestamp(seconds, UTC)


@dataclass(frozen=True, slots=True)
class DeviceState:
    """What one poll of a device says besides its temperatures."""

    defrost: bool
    door_open: bool
    probe_alarm: bool


def device_state(spec: HaccpSpec, readings: Mapping[str, TelemetryPoint]) -> DeviceState:
    def good(name: str) -> TelemetryPoint | None:
        reading = readings.get(name)
        return reading if reading is not None and reading.quality is Quality.GOOD else None

    def any_true(names: frozenset[str]) -> bool:
        return any((r := good(n)) is not None and r.value is True for n in names)

    def any_state(states: frozenset[str]) -> bool:
        return any((r := good(n)) is not None and r.value in states for n in spec.state_points)

    probe_status_bad = any((r := good(n)) is not None and isinstance(r.value, str) and r.value not in PROBE_OK_STATES
                           for n in spec.probe_status_points)
    return DeviceState(defrost=any_true(spec.defrost_points) or any_state(DEFROST_STATES),
                       door_open=any_true(spec.door_points) or any_state(DOOR_STATES),
                       probe_alarm=any_true(spec.probe_alarm_points) or probe_status_bad)


def _number(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def interval_rows(
    *, store_id: str, taken_at: datetime, readings: Mapping[str, Mapping[str, TelemetryPoint]],
    specs: Mapping[str, HaccpSpec], limits: Mapping[tuple[str, str], float | None], interval_s: int, now: datetime,
) -> list[dict[str, Any]]:  # fmt: skip
    """The interval rows one batch adds to: one per logged probe present in the batch.

    `readings`: device id -> point -> reading (one reading per point); `limits`: the
    effective high limit per (device, probe)."""
    start = interval_start(taken_at, interval_s)
    rows = []
    for device_id, spec in specs.items():
        device = readings.get(device_id, {})
        state = device_state(spec, device)
        for probe in spec.probes:
            reading = device.get(probe.point)
            if reading is None:
                continue
            value = _number(reading.value) if reading.quality is Quality.GOOD else None
            limit = limits.get((device_id, probe.point), probe.limit)
            faulty = reading.quality is Quality.BAD or (probe.primary and state.probe_alarm)
            rows.append({
                "store_id": store_id, "device_id": device_id, "point": probe.point, "interval_start": start,
                "interval_s": interval_s, "unit": reading.unit, "samples": int(value is not None),
                "value_sum": value or 0.0, "value_min": value, "value_max": value, "high_limit": limit,
                "above_limit_samples": int(value is not None and limit is not None and value > limit),
                "defrost_samples": int(state.defrost), "door_open_samples": int(state.door_open),
                "probe_fault_samples": int(faulty), "stale_samples": int(reading.quality is Quality.STALE),
                "updated_at": now,
            })
    return rows


@dataclass(frozen=True, slots=True)
class Bucket:
    """An interval row as read back (or a gap), before it becomes an HTTP/CSV row."""

    point: str
    unit: str
    start: datetime
    end: datetime
    samples: int
    value_sum: float
    value_min: float | None
    value_max: float | None
    high_limit: float | None
    above_limit: bool
    defrost: bool
    door_open: bool
    probe_fault: bool

    @property
    def mean(self) -> float | None:
        return self.value_sum / self.samples if self.samples else None

    @property
    def gap(self) -> bool:
        return self.samples == 0


def with_gaps(buckets: Iterable[Bucket], *, point: str, unit: str, start: datetime, end: datetime,
              interval_s: int, limit: float | None) -> list[Bucket]:
    """`buckets` of one probe (sorted by start) with an empty bucket for every interval before
    `end` that none of them covers."""
    step = timedelta(seconds=interval_s)
    out: list[Bucket] = []
    cursor = start

    def fill(until: datetime) -> None:
        nonlocal cursor
        while cursor < until:
            gap_end = min(cursor + step, until)
            out.append(Bucket(point=point, unit=unit, start=cursor, end=gap_end, samples=0, value_sum=0.0,
                              value_min=None, value_max=None, high_limit=limit, above_limit=False, defrost=False,
                              door_open=False, probe_fault=False))
            cursor = gap_end

    for bucket in buckets:
        fill(min(bucket.start, end))
        out.append(bucket)
        cursor = max(cursor, bucket.end)
    fill(end)
    return out
