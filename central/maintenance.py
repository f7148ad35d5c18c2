"""The retention job (maintenance layer): deletes what central no longer needs, in small batches.

One pass deletes, oldest first and at most `batch_rows` rows per statement (each statement
its own short transaction, so no lock is held for long and ingest keeps flowing):

- telemetry samples older than `telemetry_retention_days`,
- HACCP intervals that started before `haccp_retention_days`,
- idempotency-ledger rows (`inbound_messages`) received before `inbound_retention_days`;
  the ledger is what makes a redelivery harmless, so it must cover the broker's and the
  stores' redelivery horizon (settings refuse a value shorter than the MQTT session expiry),
- outbound messages the broker acknowledged before `outbound_retention_days` (unsent ones
  are never deleted),
- API tokens that have expired.

`MaintenanceLoop` runs a pass every `maintenance_interval_s` in a thread of each central
worker; on PostgreSQL a session advisory lock lets one pass run at a time across workers
(the others skip theirs). `storeguard central prune` runs one pass from the command line.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import Connection, Integer, bindparam, text

from central.auth.models import ApiToken
from central.clock import Clock
from central.db import Database, UTCDateTime
from central.ingest.models import InboundMessage
from central.outbox.models import OutboundMessage
from central.periodic import PeriodicWorker
from central.settings import CentralSettings
from central.telemetry.models import HaccpInterval, telemetry_samples

log = logging.getLogger(__name__)
MAINTENANCE_LOCK_KEY = 0x5347_5052  # "SGPR": one retention pass at a time across workers (PostgreSQL)


@dataclass(frozen=True, slots=True)
class Retention:
    telemetry_days: int = 30
    haccp_days: int = 730
    inbound_days: int = 14
    outbound_days: int = 14
    batch_rows: int = 5000

    @classmethod
    def from_settings(cls, settings: CentralSettings) -> Retention:
        return cls(telemetry_days=settings.telemetry_retention_days, haccp_days=settings.haccp_retention_days,
                   inbound_days=settings.inbound_retention_days, outbound_days=settings.outbound_retention_days,
                   batch_rows=settings.maintenance_batch_rows)


@dataclass(frozen=True, slots=True)
class PruneResult:
    """Rows deleted per table; `skipped` when another worker's pass held the lock."""

    deleted: dict[str, int] = field(default_factory=dict)
    skipped: bool = False

    @property
    def total(self) -> int:
        return sum(self.deleted.values())


@dataclass(frozen=True, slots=True)
class Target:
    table: str
    where: str  # SQL over the table's columns, with the bind parameter :cutoff
    cutoff: datetime


def _targets(retention: Retention, now: datetime) -> list[Target]:
    def days(n: int) -> datetime:
        return now - timedelta(days=n)

    inbound = "received_at < :cutoff"
    if "processed_at" in InboundMessage.__table__.c:  # a ledger with a pending state keeps its pending rows
        inbound += " AND processed_at IS NOT NULL"
    return [
        Target(telemetry_samples.name, "taken_at < :cutoff", days(retention.telemetry_days)),
        Target(HaccpInterval.__tablename__, "interval_start < :cutoff", days(retention.haccp_days)),
        Target(InboundMessage.__tablename__, inbound, days(retention.inbound_days)),
        Target(OutboundMessage.__tablename__, "sent_at IS NOT NULL AND sent_at < :cutoff",
               days(retention.outbound_days)),
        Target(ApiToken.__tablename__, "expires_at < :cutoff", now),
    ]


def _delete_batch(connection: Connection, target: Target, limit: int) -> int:
    """Delete up to `limit` rows of `target`, addressed by their physical row id (ctid on
    PostgreSQL, rowid on SQLite): one short statement, and it works for tables without a key."""
    name, where = target.table, target.where
    if connection.dialect.name == "postgresql":
        sql = f"DELETE FROM {name} WHERE ctid = ANY(ARRAY(SELECT ctid FROM {name} WHERE {where} LIMIT :limit))"
    else:
        sql = f"DELETE FROM {name} WHERE rowid IN (SELECT rowid FROM {name} WHERE {where} LIMIT :limit)"
    statement = text(sql).bindparams(bindparam("cutoff", type_=UTCDateTime()), bindparam("limit", type_=Integer()))
    result = connection.execute(statement, {"cutoff": target.cutoff, "limit": limit})
    return int(result.rowcount or 0)


def prune(*, database: Database, retention: Retention, now: datetime,
          on_batch: Callable[[str, int], None] | None = None) -> PruneResult:
    """One retention pass; returns the rows deleted per table, or `skipped` if another worker runs one."""
    with database.engine.connect() as connection:
        postgres = connection.dialect.name == "postgresql"
        if postgres:
            locked = connection.execute(text("SELECT pg_try_advisory_lock(:key)"), {"key": MAINTENANCE_LOCK_KEY})
            got_lock = bool(locked.scalar())
            connection.commit()
            if not got_lock:
                return PruneResult(skipped=True)
        try:
            deleted: dict[str, int] = {}
            for target in _targets(retention, now):
                total = 0
                while True:
                    with connection.begin():
                        count = _delete_batch(connection, target, retention.batch_rows)
                    total += count
                    if on_batch is not None and count:
                        on_batch(target.table, count)
                    if count < retention.batch_rows:
                        break
                deleted[target.table] = total
            return PruneResult(deleted=deleted)
        finally:
            if postgres:
                connection.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": MAINTENANCE_LOCK_KEY})
                connection.commit()


class MaintenanceLoop(PeriodicWorker):
    """Runs `prune` every `interval_s` in a thread until stopped (first pass right after start)."""

    def __init__(self, *, database: Database, retention: Retention, clock: Clock, interval_s: float) -> None:
        super().__init__(name="central-maintenance", what="retention job", interval_s=interval_s)
        self._database = database
        self._retention = retention
        self._clock = clock

    def run_once(self) -> PruneResult:
        result = prune(database=self._database, retention=self._retention, now=self._clock.now())
        if result.total:
            log.info("retention pass deleted %s", ", ".join(f"{n} {t}" for t, n in result.deleted.items() if n))
        return result
