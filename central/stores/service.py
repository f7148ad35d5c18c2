"""Stores, devices and point values (stores domain service). Never commits.

Writes are upserts of a whole batch at once (multi-row INSERT ... ON CONFLICT), never a
statement per device or per point.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, func, select, text
from sqlalchemy.orm import Session

from central.db import UTCDateTime, upsert
from central.errors import NotFoundError
from central.stores.models import Device, DevicePoint, Store
from central.telemetry import service as telemetry
from central.tickets.models import OPEN_STATUSES, Ticket
from device_profiles import ProfileRegistry
from protocols.mqtt.messages import StoreHealth, TelemetryBatch, TelemetryPoint


def _execute_batch(session: Session, stmt: Any, rows: Sequence[dict[str, Any]]) -> None:
    """One upsert for the whole batch.

    Executed with a list of rows and RETURNING, SQLAlchemy's "insertmanyvalues" sends it as
    multi-row INSERT ... VALUES statements of up to 1000 rows (under both backends' bind
    parameter limits) from one cached compilation, instead of compiling a huge VALUES clause.
    """
    if rows:
        session.execute(stmt, list(rows)).all()


def touch_store(*, session: Session, store_id: str, now: datetime) -> None:
    """Create the store on its first message; remember when it was last heard from."""
    stmt = upsert(session, Store.__table__).values(id=store_id, name=store_id, online=False, gateway_version="",
                                                    last_seen=now, created_at=now)
    session.execute(stmt.on_conflict_do_update(index_elements=["id"], set_={"last_seen": stmt.excluded.last_seen}))


def upsert_devices(
    *, session: Session, store_id: str, rows: Sequence[dict[str, Any]], update: Sequence[str]
) -> None:
    """Insert or update devices; `rows` hold device_id plus every column named in `update`."""
    unique = list({row["device_id"]: {**row, "store_id": store_id} for row in rows}.values())
    if not unique:
        return
    stmt = upsert(session, Device.__table__)
    stmt = stmt.on_conflict_do_update(
        index_elements=["store_id", "device_id"], set_={name: stmt.excluded[name] for name in update}
    )
    _execute_batch(session, stmt.returning(Device.__table__.c.device_id), unique)


def apply_telemetry(*, session: Session, batch: TelemetryBatch, now: datetime, profiles: ProfileRegistry | None = None,
                    haccp_interval_s: int = telemetry.DEFAULT_INTERVAL_S) -> None:
    """Store every sample (bulk), upsert the latest value per point, and, given the profiles,
    add the batch to the HACCP log of its refrigerated devices."""
    latest = {(p.device_id, p.point): p for p in batch.points}  # one row per point: the last one wins
    devices = [{"device_id": device_id, "model": "", "location": "", "last_seen": now}
               for device_id in {p.device_id for p in batch.points}]
    upsert_devices(session=session, store_id=batch.store_id, rows=devices, update=["last_seen"])
    if session.get_bind().dialect.name == "postgresql":
        _upsert_latest_postgres(session, batch, list(latest.values()))
    else:
        rows = [
            {"store_id": batch.store_id, "device_id": p.device_id, "point": p.point, "value": p.value,
             "quality": p.quality.value, "unit": p.unit, "taken_at": batch.taken_at}
            for p in latest.values()
        ]
        table = DevicePoint.__table__
        stmt = upsert(session, table)
        stmt = stmt.on_conflict_do_update(
            index_elements=["store_id", "device_id", "point"],
            set_={name: stmt.excluded[name] for name in ("value", "quality", "unit", "taken_at")},
            where=table.c.taken_at <= stmt.excluded.taken_at,  # an older batch never overwrites a newer
        )
        _execute_batch(session, stmt.returning(table.c.point), rows)
    telemetry.store_samples(session=session, store_id=batch.store_id, taken_at=batch.taken_at,
                            points=latest.values())
    if profiles is not None:
        telemetry.update_haccp(session=session, store_id=batch.store_id, taken_at=batch.taken_at,
                               points=latest.values(), profiles=profiles, now=now, interval_s=haccp_interval_s)


# The same upsert as SQLite's, with the batch as one array per column: a short statement that
# psycopg parses once and PostgreSQL plans in microseconds, where a multi-row VALUES of 300
# rows took ~15 ms of client parsing and planning per batch (BENCHMARKS.md, telemetry ingest).
_LATEST_POSTGRES = text(
    "INSERT INTO device_points (store_id, device_id, point, value, quality, unit, taken_at) "
    "SELECT :store_id, t.device_id, t.point, CAST(t.value AS json), t.quality, t.unit, :taken_at "
    "FROM unnest(CAST(:device_ids AS varchar[]), CAST(:points AS varchar[]), CAST(:values AS text[]), "
    "CAST(:qualities AS varchar[]), CAST(:units AS varchar[])) AS t(device_id, point, value, quality, unit) "
    "ON CONFLICT (store_id, device_id, point) DO UPDATE SET value = excluded.value, quality = excluded.quality, "
    "unit = excluded.unit, taken_at = excluded.taken_at "
    "WHERE device_points.taken_at <= excluded.taken_at"  # an older batch never overwrites a newer
).bindparams(bindparam("taken_at", type_=UTCDateTime()))


def _upsert_latest_postgres(session: Session, batch: TelemetryBatch, points: Sequence[TelemetryPoint]) -> None:
    session.execute(_LATEST_POSTGRES, {
        "store_id": batch.store_id, "taken_at": batch.taken_at,
        "device_ids": [p.device_id for p in points], "points": [p.point for p in points],
        "values": [json.dumps(p.value) for p in points], "qualities": [p.quality.value for p in points],
        "units": [p.unit for p in points],
    })


def apply_health(*, session: Session, health: StoreHealth, now: datetime, kinds: dict[str, str | None]) -> bool:
    """Apply a health message unless a newer one was applied already (retained replays)."""
    store = session.get(Store, health.store_id, with_for_update=True, populate_existing=True)
    if store is None:
        raise NotFoundError(f"store {health.store_id!r} must exist before its health is applied")
    if store.health_at is not None and health.sent_at < store.health_at:
        return False
    store.online = health.online
    if health.name:
        store.name = health.name
    store.gateway_version = health.gateway_version
    store.health_at = health.sent_at
    rows = [
        {"device_id": d.device_id, "model": d.device_model, "kind": kinds.get(d.device_model), "location": d.location,
         "online": d.online, "last_ok_at": d.last_ok_at, "last_seen": now}
        for d in health.devices
    ]
    upsert_devices(session=session, store_id=health.store_id, rows=rows,
                   update=["model", "kind", "location", "online", "last_ok_at", "last_seen"])
    return True


def open_ticket_counts(*, session: Session) -> dict[str, int]:
    rows = session.execute(
        select(Ticket.store_id, func.count()).where(Ticket.status.in_(OPEN_STATUSES)).group_by(Ticket.store_id)
    )
    return {store_id: count for store_id, count in rows}


def list_stores(*, session: Session) -> Sequence[Store]:
    return session.scalars(select(Store).order_by(Store.id)).all()


def get_store(*, session: Session, store_id: str) -> Store:
    store = session.get(Store, store_id)
    if store is None:
        raise NotFoundError(f"no store {store_id!r}")
    return store


def list_devices(*, session: Session, store_id: str | None = None) -> Sequence[Device]:
    query = select(Device).order_by(Device.store_id, Device.device_id)
    if store_id is not None:
        query = query.where(Device.store_id == store_id)
    return session.scalars(query).all()


def point_values(*, session: Session, store_id: str | None = None) -> dict[tuple[str, str], list[DevicePoint]]:
    query = select(DevicePoint).order_by(DevicePoint.store_id, DevicePoint.device_id, DevicePoint.point)
    if store_id is not None:
        query = query.where(DevicePoint.store_id == store_id)
    values: dict[tuple[str, str], list[DevicePoint]] = {}
    for point in session.scalars(query):
        values.setdefault((point.store_id, point.device_id), []).append(point)
    return values
