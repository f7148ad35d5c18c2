"""Database plumbing (infrastructure layer): declarative base, column types, engine, migrations.

Nothing here runs at import time: `Database(url)` builds an engine when central starts, and
`migrate(url)` upgrades a database to the newest Alembic revision.

SQLite runs in WAL mode with foreign keys and a busy timeout, and every transaction starts
with BEGIN IMMEDIATE: writers queue on the busy timeout instead of failing when two
transactions try to upgrade a read lock at once, and savepoints work (pysqlite's own
transaction handling is switched off).
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from alembic import command
from alembic.config import Config
from sqlalchemy import JSON, DateTime, Engine, MetaData, String, Table, create_engine, event, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Dialect, make_url
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker
from sqlalchemy.pool import StaticPool
from sqlalchemy.sql import FromClause, TableClause
from sqlalchemy.types import TypeDecorator

from central import deferred

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
MIGRATION_LOCK_KEY = 0x5347_4D49  # "SGMI": one central worker migrates at a time (PostgreSQL)
SQLITE_BUSY_TIMEOUT_MS = 15_000

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_N_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UTCDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes in and out, on SQLite (which stores naive text) as on PostgreSQL."""

    impl = DateTime
    cache_ok = True

    def __init__(self) -> None:
        super().__init__(timezone=True)

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r}: central stores aware UTC times only")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


E = TypeVar("E", bound=enum.StrEnum)


class StrEnumType(TypeDecorator[E]):
    """A StrEnum stored as its value in a VARCHAR (no native enum type to migrate)."""

    impl = String
    cache_ok = True

    def __init__(self, enum_class: type[E], length: int) -> None:
        self.enum_class = enum_class
        super().__init__(length)

    def process_bind_param(self, value: E | str | None, dialect: Dialect) -> str | None:
        return None if value is None else self.enum_class(value).value

    def process_result_value(self, value: str | None, dialect: Dialect) -> E | None:
        return None if value is None else self.enum_class(value)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {
        datetime: UTCDateTime,
        dict[str, Any]: JSON,
        list[str]: JSON,
    }


def _sqlite_on_connect(dbapi_connection: Any, _record: Any) -> None:
    dbapi_connection.isolation_level = None  # we emit BEGIN ourselves (see _sqlite_begin)
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=FULL")  # an acked MQTT message must survive power loss
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    cursor.close()


def _sqlite_begin(connection: Connection) -> None:
    connection.exec_driver_sql("BEGIN IMMEDIATE")


def create_db_engine(database_url: str) -> Engine:
    url = make_url(database_url)
    if url.get_backend_name() != "sqlite":
        return create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=20)
    database = url.database or ""
    if database in ("", ":memory:"):
        engine = create_engine(url, poolclass=StaticPool, connect_args={"check_same_thread": False})
    else:
        if not database.startswith("file:"):
            Path(database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"check_same_thread": False})
    event.listen(engine, "connect", _sqlite_on_connect)
    event.listen(engine, "begin", _sqlite_begin)
    return engine


class Database:
    """The engine and session factory of one central process.

    Every commit first runs the work services deferred to it (`central.deferred`).
    `on_commit(callback)` runs a callback after any session commit that wrote to the outbox
    (services set `session.info["outbox_written"]`), so the publisher wakes at once.
    """

    def __init__(self, database_url: str) -> None:
        self.url = database_url
        self.engine = create_db_engine(database_url)
        self.sessionmaker = sessionmaker(self.engine, expire_on_commit=False)
        self._commit_listeners: list[Callable[[], None]] = []
        event.listen(self.sessionmaker, "before_commit", deferred.settle)
        event.listen(self.sessionmaker, "after_commit", self._after_commit)
        event.listen(self.sessionmaker, "after_rollback", self._after_rollback)

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    def session(self) -> Session:
        return self.sessionmaker()

    def on_outbox_commit(self, callback: Callable[[], None]) -> None:
        self._commit_listeners.append(callback)

    def _after_commit(self, session: Session) -> None:
        if session.info.pop("outbox_written", False):
            for callback in self._commit_listeners:
                callback()

    @staticmethod
    def _after_rollback(session: Session) -> None:
        session.info.pop("outbox_written", None)
        deferred.discard(session)  # a real rollback (a savepoint's is not one): its changes are gone

    def ping(self) -> None:
        with self.engine.connect() as connection:
            connection.execute(text("SELECT 1"))

    def dispose(self) -> None:
        self.engine.dispose()


def upsert(session: Session, table: FromClause) -> postgresql.Insert | sqlite.Insert:
    """An INSERT that supports ON CONFLICT on both backends (one statement per batch)."""
    assert isinstance(table, TableClause), f"upsert needs a table, not {type(table).__name__}"
    return insert_entity(session, table)


def insert_entity(session: Session, entity: type[Base] | TableClause) -> postgresql.Insert | sqlite.Insert:
    """`upsert` for an ORM entity too: `.returning(entity)` gives persistent objects (one statement)."""
    if session.get_bind().dialect.name == "postgresql":
        return postgresql.insert(entity)
    return sqlite.insert(entity)


def alembic_config(connection: Connection | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def migrate(database_url: str) -> None:
    """Upgrade the database to the newest revision(s); safe to run from several workers at once."""
    engine = create_db_engine(database_url)
    try:
        with engine.begin() as connection:
            if connection.dialect.name == "postgresql":
                connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK_KEY})
            command.upgrade(alembic_config(connection), "heads")
    finally:
        engine.dispose()
