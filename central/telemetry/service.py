"""Telemetry samples and the HACCP temperature log (telemetry domain service). Never commits.

`store_samples` writes a batch's samples in one bulk operation: COPY on PostgreSQL (psycopg 3,
inside the caller's transaction), one executemany on SQLite; never an INSERT per row.
`update_haccp` adds a batch to the interval rows of its refrigerated devices with one
multi-row upsert; nothing is rescanned. `temperature_log` reads the log of one device.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, func, insert, select
from sqlalchemy.orm import Session

from central.db import upsert
from central.errors import CentralError, NotFoundError
from central.store_config import service as store_config
from central.stores.models import Device, Store
from central.telemetry import haccp
from central.telemetry.haccp import Bucket, HaccpSpec
from central.telemetry.models import (
    SAMPLE_COLUMNS,
    HaccpInterval,
    TemperatureFlags,
    TemperatureInterval,
    TemperatureLog,
    telemetry_samples,
)
from device_profiles import ProfileRegistry
from protocols.mqtt.messages import TelemetryPoint

DEFAULT_INTERVAL_S = 900
_COPY_SQL = f"COPY telemetry_samples ({', '.join(SAMPLE_COLUMNS)}) FROM STDIN (FORMAT BINARY)"
_COPY_TYPES = ("varchar", "varchar", "varchar", "timestamptz", "float8", "text", "varchar", "varchar")
_ADDED = ("samples", "value_sum", "above_limit_samples", "defrost_samples", "door_open_samples",
          "probe_fault_samples", "stale_samples")


def sample_row(store_id: str, taken_at: datetime, point: TelemetryPoint) -> tuple[Any, ...]:
    """One sample as a tuple in SAMPLE_COLUMNS order (see central.telemetry.models for the encoding)."""
    value = point.value
    if isinstance(value, bool):
        number, state = (1.0 if value else 0.0), ("true" if value else "false")
    elif isinstance(value, int | float):
        number, state = float(value), None
    else:
        number, state = None, value
    return (store_id, point.device_id, point.point, taken_at, number, state, point.quality.value, point.unit)


def store_samples(*, session: Session, store_id: str, taken_at: datetime, points: Iterable[TelemetryPoint]) -> int:
    """Append the samples of one batch in one bulk operation; returns the number of rows."""
    rows = [sample_row(store_id, taken_at, p) for p in points]
    if not rows:
        return 0
    connection = session.connection()
    if connection.dialect.name == "postgresql":
        raw = connection.connection.driver_connection  # psycopg 3, in the session's transaction
        assert raw is not None
        with raw.cursor() as cursor, cursor.copy(_COPY_SQL) as copy:
            copy.set_types(_COPY_TYPES)  # binary: no text formatting and parsing of each value
            for row in rows:
                copy.write_row(row)
    else:
        session.execute(insert(telemetry_samples), [dict(zip(SAMPLE_COLUMNS, row, strict=True)) for row in rows])
    return len(rows)


def insert_samples_one_by_one(*, session: Session, store_id: str, taken_at: datetime,
                              points: Iterable[TelemetryPoint]) -> int:
    """The same rows as `store_samples`, one INSERT statement each: the benchmark's peer, never ingest's path."""
    statement = insert(telemetry_samples)  # compiled once, cached: only the round trips differ
    count = 0
    for point in points:
        session.execute(statement, dict(zip(SAMPLE_COLUMNS, sample_row(store_id, taken_at, point), strict=True)))
        count += 1
    return count


def _least(session: Session, a: ColumnElement[Any], b: ColumnElement[Any], *, greatest: bool) -> ColumnElement[Any]:
    """LEAST/GREATEST that skip a NULL side, on both backends (SQLite's min/max return NULL instead)."""
    left, right = func.coalesce(a, b), func.coalesce(b, a)
    if session.get_bind().dialect.name == "postgresql":
        return func.greatest(left, right) if greatest else func.least(left, right)
    return func.max(left, right) if greatest else func.min(left, right)


def specs_of(*, session: Session, store_id: str, device_ids: Iterable[str],
             profiles: ProfileRegistry) -> dict[str, HaccpSpec]:
    """The HACCP spec of each of these devices that is a logged refrigeration controller."""
    ids = sorted(set(device_ids))
    if not ids:
        return {}
    models = session.execute(
        select(Device.device_id, Device.model).where(Device.store_id == store_id, Device.device_id.in_(ids))
    ).all()
    by_model: dict[str, HaccpSpec | None] = {}
    specs = {}
    for device_id, model in models:
        if model not in by_model:
            by_model[model] = haccp.spec_for(profiles.get(model)) if model and model in profiles else None
        spec = by_model[model]
        if spec is not None:
            specs[device_id] = spec
    return specs


def effective_limits(*, session: Session, store_id: str, specs: Mapping[str, HaccpSpec]) -> dict[tuple[str, str], float | None]:
    """The high limit in force per (device, probe): central's override of the rule, else the profile's."""
    config = store_config.current(session=session, store_id=store_id) if specs else None
    overrides: Mapping[str, Any] = config.devices if config is not None else {}
    limits: dict[tuple[str, str], float | None] = {}
    for device_id, spec in specs.items():
        rules = overrides.get(device_id) or {}
        for probe in spec.probes:
            override = rules.get(probe.rule_code) if probe.rule_code else None
            limit = override.get("limit") if isinstance(override, dict) else None
            limits[(device_id, probe.point)] = float(limit) if limit is not None else probe.limit
    return limits


def update_haccp(*, session: Session, store_id: str, taken_at: datetime, points: Iterable[TelemetryPoint],
                 profiles: ProfileRegistry, now: datetime, interval_s: int = DEFAULT_INTERVAL_S) -> int:
    """Add one batch to the HACCP log of its refrigerated devices; returns the interval rows touched."""
    readings: dict[str, dict[str, TelemetryPoint]] = {}
    for point in points:
        readings.setdefault(point.device_id, {})[point.point] = point
    specs = specs_of(session=session, store_id=store_id, device_ids=readings, profiles=profiles)
    if not specs:
        return 0
    limits = effective_limits(session=session, store_id=store_id, specs=specs)
    rows = haccp.interval_rows(store_id=store_id, taken_at=taken_at, readings=readings, specs=specs, limits=limits,
                               interval_s=interval_s, now=now)
    if not rows:
        return 0
    table = HaccpInterval.__table__
    stmt = upsert(session, table)
    current, new = table.c, stmt.excluded
    merged: dict[str, Any] = {name: current[name] + new[name] for name in _ADDED}
    merged["value_min"] = _least(session, current.value_min, new.value_min, greatest=False)
    merged["value_max"] = _least(session, current.value_max, new.value_max, greatest=True)
    merged["high_limit"] = new.high_limit
    merged["unit"] = new.unit
    merged["updated_at"] = new.updated_at
    stmt = stmt.on_conflict_do_update(
        index_elements=["store_id", "device_id", "point", "interval_start", "interval_s"], set_=merged)
    # executemany of one short statement: psycopg 3 pipelines it (one round trip, parsed once);
    # a multi-row VALUES of 18 columns costs more to parse and plan than the rows to write
    session.execute(stmt, rows)
    return len(rows)


# --- reading the log ---

MAX_RANGE = timedelta(days=92)


class InvalidRangeError(CentralError):
    """`from`/`to` of a temperature log request are unusable (HTTP 422); names the parameter."""

    code = "invalid_range"

    def __init__(self, field: str, message: str) -> None:
        self.field = field
        self.details = {"field": field}  # added to the HTTP body
        super().__init__(f"{field}: {message}")


def temperature_log(*, session: Session, store_id: str, device_id: str, start: datetime, end: datetime,
                    now: datetime, profiles: ProfileRegistry, interval_s: int = DEFAULT_INTERVAL_S) -> TemperatureLog:
    """The log of one refrigerated device over [start, end): stored intervals plus a gap row for
    every interval before the current one that has none."""
    if start.tzinfo is None:
        raise InvalidRangeError("from", "needs a time zone, e.g. 2026-01-05T00:00:00Z")
    if end.tzinfo is None:
        raise InvalidRangeError("to", "needs a time zone, e.g. 2026-01-06T00:00:00Z")
    if end <= start:
        raise InvalidRangeError("to", f"must be after 'from' ({start.isoformat()})")
    if end - start > MAX_RANGE:
        raise InvalidRangeError("from", f"the range may span at most {MAX_RANGE.days} days; request it in parts")
    store = session.get(Store, store_id)
    device = session.get(Device, (store_id, device_id))
    if store is None or device is None:
        raise NotFoundError(f"no device {device_id!r} in store {store_id!r}")
    spec = haccp.spec_for(profiles.get(device.model)) if device.model and device.model in profiles else None
    aligned = haccp.interval_start(start, interval_s)
    rows = session.scalars(
        select(HaccpInterval)
        .where(HaccpInterval.store_id == store_id, HaccpInterval.device_id == device_id,
               HaccpInterval.interval_start >= aligned, HaccpInterval.interval_start < end)
        .order_by(HaccpInterval.point, HaccpInterval.interval_start, HaccpInterval.interval_s)
    ).all()
    if spec is None and not rows:
        raise NotFoundError(f"device {device_id!r} of store {store_id!r} is not a refrigeration controller with "
                            f"temperature probes (model {device.model or 'not known yet'!r}): it has no temperature log")
    by_point: dict[str, list[Bucket]] = {}
    units: dict[str, str] = {}
    for row in rows:
        by_point.setdefault(row.point, []).append(_bucket(row))
        units[row.point] = row.unit
    limits = effective_limits(session=session, store_id=store_id, specs={device_id: spec}) if spec else {}
    points = [p.point for p in spec.probes] if spec else []
    points += sorted(set(by_point) - set(points))
    fill_until = min(end, haccp.interval_start(now, interval_s))  # the running interval is not a gap yet
    intervals: list[TemperatureInterval] = []
    for point in points:
        buckets = haccp.with_gaps(by_point.get(point, []), point=point, unit=units.get(point, haccp.CELSIUS),
                                  start=aligned, end=fill_until, interval_s=interval_s,
                                  limit=limits.get((device_id, point)))
        intervals.extend(_interval(b) for b in buckets)
    return TemperatureLog(store_id=store_id, store_name=store.name, device_id=device_id, device_model=device.model,
                          location=device.location, interval_s=interval_s, to=end, intervals=intervals,
                          **{"from": aligned})


def _bucket(row: HaccpInterval) -> Bucket:
    return Bucket(point=row.point, unit=row.unit, start=row.interval_start,
                  end=row.interval_start + timedelta(seconds=row.interval_s), samples=row.samples,
                  value_sum=row.value_sum, value_min=row.value_min, value_max=row.value_max, high_limit=row.high_limit,
                  above_limit=row.above_limit_samples > 0, defrost=row.defrost_samples > 0,
                  door_open=row.door_open_samples > 0, probe_fault=row.probe_fault_samples > 0)


def _interval(bucket: Bucket) -> TemperatureInterval:
    mean = bucket.mean
    flags = TemperatureFlags(above_limit=bucket.above_limit, defrost=bucket.defrost, door_open=bucket.door_open,
                             probe_fault=bucket.probe_fault, gap=bucket.gap)
    return TemperatureInterval(point=bucket.point, unit=bucket.unit, interval_start=bucket.start,
                               interval_end=bucket.end, min=bucket.value_min, max=bucket.value_max,
                               mean=round(mean, 2) if mean is not None else None, samples=bucket.samples,
                               high_limit=bucket.high_limit, flags=flags)


CSV_HEADER = ("store_id", "store_name", "device_id", "location", "probe", "unit", "interval_start_utc",
              "interval_end_utc", "min", "max", "mean", "samples", "high_limit", "flags")


def _utc(value: datetime) -> str:
    return value.strftime("%Y-%m-%dT%H:%M:%SZ")


def _num(value: float | None) -> str:
    return "" if value is None else f"{value:.2f}"


def log_csv(log: TemperatureLog) -> str:
    """The log as CSV for an inspector: one line per probe and interval, times in UTC, flags by name."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(CSV_HEADER)
    for row in log.intervals:
        writer.writerow((log.store_id, log.store_name, log.device_id, log.location, row.point, row.unit,
                         _utc(row.interval_start), _utc(row.interval_end), _num(row.min), _num(row.max),
                         _num(row.mean), row.samples, _num(row.high_limit), "; ".join(row.flags.names())))
    return out.getvalue()


def sample_count(*, session: Session, store_id: str | None = None) -> int:
    query = select(func.count()).select_from(telemetry_samples)
    if store_id is not None:
        query = query.where(telemetry_samples.c.store_id == store_id)
    return int(session.scalar(query) or 0)


def samples_of(*, session: Session, store_id: str, device_id: str, point: str) -> Sequence[Any]:
    """The stored samples of one series, oldest first (tests and support use)."""
    c = telemetry_samples.c
    return session.execute(
        select(telemetry_samples).where(c.store_id == store_id, c.device_id == device_id, c.point == point)
        .order_by(c.taken_at)).all()
