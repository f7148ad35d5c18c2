"""The store database (gateway layer): one SQLite file per store, in WAL mode.

Holds the outbox, the store's sequence number, persisted counters, the open faults, the
ticket statuses received from central, the desired config applied from central and the
edge's rule state (timers, baselines) for a restart. Every call is a short synchronous statement on a
local file, made from the event loop thread. sqlite3 errors become `StorageError` here.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Self

from gateway.errors import StorageError

SCHEMA_VERSION = 1
OUTBOX_KINDS = ("fault", "config_ack", "health", "telemetry")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT,  -- never reused: a late PUBACK can't delete a newer row
    priority INTEGER NOT NULL,
    kind TEXT NOT NULL,
    topic TEXT NOT NULL,
    payload BLOB NOT NULL,
    qos INTEGER NOT NULL,
    retain INTEGER NOT NULL,
    created_at REAL NOT NULL,
    size INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS outbox_order ON outbox (priority, id);
CREATE INDEX IF NOT EXISTS outbox_by_kind ON outbox (kind, id);
CREATE INDEX IF NOT EXISTS outbox_by_age ON outbox (kind, created_at);
CREATE TABLE IF NOT EXISTS outbox_totals (kind TEXT PRIMARY KEY, rows INTEGER NOT NULL, bytes INTEGER NOT NULL);
CREATE TRIGGER IF NOT EXISTS outbox_added AFTER INSERT ON outbox BEGIN
    UPDATE outbox_totals SET rows = rows + 1, bytes = bytes + NEW.size WHERE kind = NEW.kind;
END;
CREATE TRIGGER IF NOT EXISTS outbox_removed AFTER DELETE ON outbox BEGIN
    UPDATE outbox_totals SET rows = rows - 1, bytes = bytes - OLD.size WHERE kind = OLD.kind;
END;
CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS sequence (id INTEGER PRIMARY KEY CHECK (id = 1), next_seq INTEGER NOT NULL);
INSERT OR IGNORE INTO sequence (id, next_seq) VALUES (1, 0);
CREATE TABLE IF NOT EXISTS open_faults (
    device_id TEXT NOT NULL,
    fault_code TEXT NOT NULL,
    event TEXT NOT NULL,
    PRIMARY KEY (device_id, fault_code)
);
CREATE TABLE IF NOT EXISTS ticket_latest (
    ticket_id INTEGER PRIMARY KEY,
    version INTEGER NOT NULL,
    payload TEXT NOT NULL,  -- the TicketStatus JSON
    received_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS ticket_received (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    ticket_id INTEGER NOT NULL,
    version INTEGER NOT NULL,
    status TEXT NOT NULL,
    message_id TEXT NOT NULL,
    changed_at REAL NOT NULL,  -- when central made the change (unix seconds)
    received_at REAL NOT NULL,  -- when this store stored it
    UNIQUE (ticket_id, version)
);
CREATE TABLE IF NOT EXISTS config_applied (  -- the desired config from central this store runs
    id INTEGER PRIMARY KEY CHECK (id = 1),
    version INTEGER NOT NULL,
    hash TEXT NOT NULL,
    devices TEXT NOT NULL,  -- {device_id: {rule_code: {field: value}}} as JSON
    issued_by TEXT NOT NULL,
    applied_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS rule_state (  -- the edge's rule timers and baselines (gateway.rule_state)
    device_id TEXT PRIMARY KEY,
    state TEXT NOT NULL,  -- JSON, times as wall-clock stamps
    saved_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS config_outcome (  -- the store's last answer to a desired config
    id INTEGER PRIMARY KEY CHECK (id = 1),
    version INTEGER NOT NULL,
    result TEXT NOT NULL,
    error TEXT,  -- the ConfigProblem JSON, when rejected
    decided_at REAL NOT NULL
);
"""


class StoreDatabase:
    """A SQLite connection with explicit, nestable transactions (the outermost one commits)."""

    def __init__(self, connection: sqlite3.Connection, path: Path) -> None:
        self._conn = connection
        self.path = path
        self._depth = 0

    @classmethod
    def open(cls, path: Path | str) -> StoreDatabase:
        path = Path(path)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(path, isolation_level=None)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute("PRAGMA busy_timeout=2000")
            conn.executescript(_SCHEMA)
            conn.executemany("INSERT OR IGNORE INTO outbox_totals (kind, rows, bytes) VALUES (?, 0, 0)",
                             [(k,) for k in OUTBOX_KINDS])
            conn.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
        except (OSError, sqlite3.Error) as exc:
            raise StorageError(f"cannot open store database {path}: {exc}") from exc
        return cls(conn, path)

    def close(self) -> None:
        self._conn.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def transaction(self, *, durable: bool = False) -> Iterator[None]:
        """BEGIN IMMEDIATE ... COMMIT; `durable` syncs the WAL on commit (synchronous=FULL).

        Nested calls join the outer transaction, which decides durability.
        """
        if self._depth:
            self._depth += 1
            try:
                yield
            finally:
                self._depth -= 1
            return
        if durable:
            self.execute("PRAGMA synchronous=FULL")
        try:
            self.execute("BEGIN IMMEDIATE")
            self._depth = 1
            try:
                yield
            except BaseException:
                self._rollback()
                raise
            finally:
                self._depth = 0
            try:
                self._conn.execute("COMMIT")
            except sqlite3.Error as exc:
                self._rollback()
                raise StorageError(f"{self.path}: commit failed: {exc}") from exc
        finally:
            if durable:
                self.execute("PRAGMA synchronous=NORMAL")

    def _rollback(self) -> None:
        if self._conn.in_transaction:
            self._conn.execute("ROLLBACK")

    def execute(self, sql: str, params: tuple[Any, ...] | list[Any] = ()) -> sqlite3.Cursor:
        try:
            return self._conn.execute(sql, params)
        except sqlite3.Error as exc:
            raise StorageError(f"{self.path}: {exc}") from exc

    def add_counter(self, name: str, delta: int = 1) -> None:
        self.execute(
            "INSERT INTO counters (name, value) VALUES (?, ?) ON CONFLICT(name) DO UPDATE SET value = value + ?",
            (name, delta, delta),
        )

    def counters(self, prefix: str = "") -> dict[str, int]:
        rows = self.execute("SELECT name, value FROM counters WHERE substr(name, 1, ?) = ? ORDER BY name",
                            (len(prefix), prefix))
        return {name: value for name, value in rows}
