"""Durable outbox (gateway layer): every uplink message is on disk before MQTT sees it.

Rows leave only on their own PUBACK (`ack`) or by the bounded-size policy: over `max_bytes`
the oldest telemetry goes first, then older health; fault events are never evicted nor aged
out. Telemetry and health older than `max_age_s` expire. Every drop is counted in the
database, so the counts survive restarts. The store's monotonic sequence number lives here
too, allocated in the same transaction as the row that carries it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from enum import IntEnum, StrEnum

from edge.clock import Clock
from gateway.storage import StoreDatabase

log = logging.getLogger(__name__)

DROP_PREFIX = "drop:"
OVER_BUDGET_COUNTER = "over_budget:fault"


class OutboxKind(StrEnum):
    FAULT = "fault"
    CONFIG_ACK = "config_ack"  # the store's answer to a desired config from central
    HEALTH = "health"
    TELEMETRY = "telemetry"


class Priority(IntEnum):
    """Lower is sent first: faults before health before telemetry backlog."""

    FAULT = 0
    HEALTH = 1
    TELEMETRY = 2


# Config acks go with the faults: small, one per desired config, and central's sync status
# waits on them. Like faults they never expire and are never evicted (a newer ack supersedes).
PRIORITY = {OutboxKind.FAULT: Priority.FAULT, OutboxKind.CONFIG_ACK: Priority.FAULT,
            OutboxKind.HEALTH: Priority.HEALTH, OutboxKind.TELEMETRY: Priority.TELEMETRY}
EVICTION_ORDER = (OutboxKind.TELEMETRY, OutboxKind.HEALTH)  # faults and config acks are never evicted


class DropReason(StrEnum):
    OVERFLOW = "overflow"  # evicted (or refused) to stay under max_bytes
    EXPIRED = "expired"  # older than max_age_s
    SUPERSEDED = "superseded"  # an older health row replaced by a newer one


@dataclass(frozen=True, slots=True)
class OutboxRow:
    id: int
    kind: OutboxKind
    topic: str
    payload: bytes
    qos: int
    retain: bool
    created_at: float  # unix seconds
    size: int


@dataclass(frozen=True, slots=True)
class OutboxStats:
    rows: dict[OutboxKind, int]
    bytes: int
    oldest_created_at: float | None

    @property
    def depth(self) -> int:
        return sum(self.rows.values())


class Outbox:
    def __init__(self, db: StoreDatabase, *, max_bytes: int, max_age_s: float, clock: Clock) -> None:
        self._db = db
        self._max_bytes = max_bytes
        self._max_age_s = max_age_s
        self._clock = clock
        self._warned_over_budget = False
        self._warned_drops: set[tuple[OutboxKind, DropReason]] = set()

    def allocate_seq(self) -> int:
        """The next value of the store's sequence; committed with the caller's transaction."""
        with self._db.transaction():
            (seq,) = self._db.execute("UPDATE sequence SET next_seq = next_seq + 1 RETURNING next_seq - 1").fetchone()
        return int(seq)

    def peek_seq(self) -> int:
        (seq,) = self._db.execute("SELECT next_seq FROM sequence").fetchone()
        return int(seq)

    def put(self, kind: OutboxKind, topic: str, payload: bytes, *, qos: int = 1, retain: bool = False,
            supersede: bool = False) -> int | None:
        """Store a message; returns its row id, or None when it was refused (counted as a drop).

        `supersede` first deletes older rows of the same kind and topic (health: only the
        latest state matters). Fault rows are committed with synchronous=FULL.
        """
        size = len(payload) + len(topic)
        now = self._clock.now().timestamp()
        with self._db.transaction(durable=kind is OutboxKind.FAULT):
            self._expire(now)
            if supersede:
                removed = self._db.execute("DELETE FROM outbox WHERE kind = ? AND topic = ?", (kind, topic)).rowcount
                self._count_drop(kind, DropReason.SUPERSEDED, removed)
            if not self._make_room(kind, size):
                self._count_drop(kind, DropReason.OVERFLOW, 1)
                return None
            cursor = self._db.execute(
                "INSERT INTO outbox (priority, kind, topic, payload, qos, retain, created_at, size)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (int(PRIORITY[kind]), kind.value, topic, payload, qos, int(retain), now, size),
            )
            return int(cursor.lastrowid or 0)

    def pending(self, limit: int, exclude: set[int] | frozenset[int] = frozenset()) -> list[OutboxRow]:
        """Up to `limit` rows in send order (priority, then age), skipping `exclude` (in flight)."""
        if limit <= 0:
            return []
        rows = self._db.execute(
            "SELECT id, kind, topic, payload, qos, retain, created_at, size FROM outbox"
            " ORDER BY priority, id LIMIT ?",
            (limit + len(exclude),),
        ).fetchall()
        found = [
            OutboxRow(id=r[0], kind=OutboxKind(r[1]), topic=r[2], payload=bytes(r[3]), qos=r[4],
                      retain=bool(r[5]), created_at=r[6], size=r[7])
            for r in rows if r[0] not in exclude
        ]
        return found[:limit]

    def ack(self, row_id: int) -> bool:
        """The broker acknowledged this row: delete it. False if it was already gone."""
        with self._db.transaction():
            return self._db.execute("DELETE FROM outbox WHERE id = ?", (row_id,)).rowcount > 0

    def expire(self) -> int:
        """Drop telemetry and health older than max_age_s; returns how many rows went."""
        with self._db.transaction():
            return self._expire(self._clock.now().timestamp())

    def stats(self) -> OutboxStats:
        totals = self._db.execute("SELECT kind, rows, bytes FROM outbox_totals").fetchall()
        oldest = self._db.execute("SELECT created_at FROM outbox ORDER BY id LIMIT 1").fetchone()
        return OutboxStats(
            rows={OutboxKind(kind): rows for kind, rows, _ in totals},
            bytes=sum(b for _, _, b in totals),
            oldest_created_at=oldest[0] if oldest else None,
        )

    def drops(self) -> dict[tuple[OutboxKind, DropReason], int]:
        """Persisted drop counts by (kind, reason)."""
        found: dict[tuple[OutboxKind, DropReason], int] = {}
        for name, value in self._db.counters(DROP_PREFIX).items():
            kind, reason = name.removeprefix(DROP_PREFIX).split(":")
            found[(OutboxKind(kind), DropReason(reason))] = value
        return found

    def over_budget(self) -> int:
        """Fault rows accepted although the outbox was already over max_bytes."""
        return self._db.counters(OVER_BUDGET_COUNTER).get(OVER_BUDGET_COUNTER, 0)

    def _expire(self, now: float) -> int:
        cutoff = now - self._max_age_s
        total = 0
        for kind in EVICTION_ORDER:
            removed = self._db.execute(
                "DELETE FROM outbox WHERE kind = ? AND created_at < ?", (kind.value, cutoff)
            ).rowcount
            self._count_drop(kind, DropReason.EXPIRED, removed)
            total += removed
        return total

    def _bytes(self) -> int:
        (total,) = self._db.execute("SELECT COALESCE(SUM(bytes), 0) FROM outbox_totals").fetchone()
        return int(total)

    def _make_room(self, kind: OutboxKind, size: int) -> bool:
        """Evict oldest telemetry, then oldest health, to fit `size`. Never evicts faults, and
        never evicts a more important kind for a less important one."""
        excess = self._bytes() + size - self._max_bytes
        if excess <= 0:
            return True
        if kind is not OutboxKind.FAULT and size > self._max_bytes:
            return False
        for victim in EVICTION_ORDER:
            if PRIORITY[victim] < PRIORITY[kind]:
                continue
            excess -= self._evict_oldest(victim, excess)
            if excess <= 0:
                return True
        if kind is OutboxKind.FAULT:
            self._db.add_counter(OVER_BUDGET_COUNTER)
            if not self._warned_over_budget:
                self._warned_over_budget = True
                log.error("outbox holds more than max_bytes=%d of fault events; faults are kept anyway",
                          self._max_bytes)
            return True
        return False

    def _evict_oldest(self, kind: OutboxKind, excess: int) -> int:
        freed = 0
        while freed < excess:
            victims = self._db.execute(
                "SELECT id, size FROM outbox WHERE kind = ? ORDER BY id LIMIT 64", (kind.value,)
            ).fetchall()
            if not victims:
                break
            chosen: list[int] = []
            for row_id, row_size in victims:
                chosen.append(row_id)
                freed += row_size
                if freed >= excess:
                    break
            self._db.execute(f"DELETE FROM outbox WHERE id IN ({','.join('?' * len(chosen))})", chosen)
            self._count_drop(kind, DropReason.OVERFLOW, len(chosen))
        return freed

    def _count_drop(self, kind: OutboxKind, reason: DropReason, count: int) -> None:
        if count <= 0:
            return
        self._db.add_counter(f"{DROP_PREFIX}{kind.value}:{reason.value}", count)
        if reason is not DropReason.SUPERSEDED and (kind, reason) not in self._warned_drops:
            self._warned_drops.add((kind, reason))  # log once, then count
            log.warning("outbox dropped %d %s message(s) (%s); further drops are only counted",
                        count, kind.value, reason.value)
