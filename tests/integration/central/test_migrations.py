"""Alembic migrations build exactly the schema the models describe, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import inspect, text
from sqlalchemy.exc import IntegrityError

from central.db import Database, alembic_config, create_db_engine, migrate
from central.models import metadata

pytestmark = pytest.mark.empty_database  # these tests migrate an empty database themselves

NOW = datetime(2026, 1, 5, tzinfo=UTC)


def test_migrated_schema_matches_the_models(database_url: str) -> None:
    migrate(database_url)
    engine = create_db_engine(database_url)
    try:
        with engine.connect() as connection:
            context = MigrationContext.configure(connection, opts={"compare_type": True})
            assert compare_metadata(context, metadata) == []
            heads = set(ScriptDirectory.from_config(alembic_config()).get_heads())
            assert set(context.get_current_heads()) == heads
            tables = set(inspect(connection).get_table_names())
    finally:
        engine.dispose()
    assert {"stores", "devices", "device_points", "users", "api_tokens", "technicians", "tickets",
            "ticket_events", "inbound_messages", "outbound_messages", "dead_letters", "fault_states",
            "store_config_versions", "store_config_acks"} <= tables


def test_the_open_ticket_index_is_partial_and_unique(database_url: str) -> None:
    migrate(database_url)
    engine = create_db_engine(database_url)
    try:
        with engine.connect() as connection:
            if connection.dialect.name == "sqlite":
                sql = connection.execute(text("SELECT sql FROM sqlite_master WHERE name = 'uq_tickets_open_fault'"))
            else:
                sql = connection.execute(
                    text("SELECT indexdef FROM pg_indexes WHERE indexname = 'uq_tickets_open_fault'"))
            definition = sql.scalar_one()
    finally:
        engine.dispose()
    assert "UNIQUE" in definition.upper()
    for status in ("resolved", "closed", "cancelled"):
        assert f"'{status}'" in definition


def _insert_ticket(connection, status: str) -> None:  # type: ignore[no-untyped-def]
    connection.execute(text(
        "INSERT INTO tickets (store_id, device_id, fault_code, device_model, title, location, ticket_class, "
        "fault_class, severity, priority, status, fault_active, raise_count, first_raised_at, last_raised_at, "
        "evidence, resolution_note, created_at, updated_at, version) VALUES ('s1', 'd1', 'f1', 'm', 't', '', "
        "'repair', 'food_safety', 'major', 2, :status, true, 1, :now, :now, '{}', '', :now, :now, 1)"
    ), {"status": status, "now": NOW.replace(tzinfo=None) if connection.dialect.name == "sqlite" else NOW})


def test_the_database_itself_refuses_a_second_open_ticket(database_url: str) -> None:
    migrate(database_url)
    database = Database(database_url)
    try:
        with database.engine.begin() as connection:
            connection.execute(text("INSERT INTO stores (id, name, online, gateway_version, created_at) "
                                    "VALUES ('s1', 's1', false, '', :now)"),
                               {"now": NOW.replace(tzinfo=None) if database.dialect == "sqlite" else NOW})
            connection.execute(text("INSERT INTO devices (store_id, device_id, model, location) "
                                    "VALUES ('s1', 'd1', 'm', '')"))
            _insert_ticket(connection, "resolved")
            _insert_ticket(connection, "closed")  # any number of finished tickets
            _insert_ticket(connection, "assigned")
        with pytest.raises(IntegrityError), database.engine.begin() as connection:
            _insert_ticket(connection, "new")
    finally:
        database.dispose()


def test_migrate_is_idempotent_and_reversible(database_url: str) -> None:
    migrate(database_url)
    migrate(database_url)  # a second worker starting: nothing to do
    engine = create_db_engine(database_url)
    try:
        with engine.begin() as connection:
            command.downgrade(alembic_config(connection), "base")
        with engine.connect() as connection:
            assert set(inspect(connection).get_table_names()) <= {"alembic_version"}
    finally:
        engine.dispose()
    migrate(database_url)


def test_sqlite_runs_in_wal_with_foreign_keys(tmp_path) -> None:  # type: ignore[no-untyped-def]
    database = Database(f"sqlite:///{tmp_path / 'sub' / 'central.db'}")  # the directory is created
    try:
        with database.engine.connect() as connection:
            assert connection.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            assert connection.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
            assert connection.exec_driver_sql("PRAGMA busy_timeout").scalar() >= 5000
    finally:
        database.dispose()


PREVIOUS_RELEASE_HEAD = "0003"  # what the last landed release ran


def test_upgrade_from_the_previous_release_keeps_its_data(database_url: str) -> None:
    """A database at the previous head, with stores, users and tickets in it, upgrades in place."""
    engine = create_db_engine(database_url)
    try:
        with engine.begin() as connection:
            command.upgrade(alembic_config(connection), PREVIOUS_RELEASE_HEAD)
        now = NOW.replace(tzinfo=None) if engine.dialect.name == "sqlite" else NOW
        with engine.begin() as connection:
            connection.execute(text("INSERT INTO stores (id, name, online, gateway_version, created_at) "
                                    "VALUES ('s1', 'Store one', true, '1.0', :now)"), {"now": now})
            connection.execute(text("INSERT INTO devices (store_id, device_id, model, location) "
                                    "VALUES ('s1', 'd1', 'm', 'Aisle 3')"))
            connection.execute(text("INSERT INTO users (username, display_name, role, password_hash, active, "
                                    "created_at) VALUES ('tina', 'Tina', 'technician', 'x', true, :now)"),
                               {"now": now})
            _insert_ticket(connection, "assigned")
            _insert_ticket(connection, "closed")
        migrate(database_url)
        with engine.connect() as connection:
            heads = set(ScriptDirectory.from_config(alembic_config()).get_heads())
            assert set(MigrationContext.configure(connection).get_current_heads()) == heads
            assert connection.execute(text("SELECT name FROM stores WHERE id = 's1'")).scalar_one() == "Store one"
            assert connection.execute(text("SELECT location FROM devices")).scalar_one() == "Aisle 3"
            assert connection.execute(text("SELECT role FROM users")).scalar_one() == "technician"
            statuses = connection.execute(text("SELECT status FROM tickets ORDER BY id")).scalars().all()
            assert statuses == ["assigned", "closed"]
            context = MigrationContext.configure(connection, opts={"compare_type": True})
            assert compare_metadata(context, metadata) == []
    finally:
        engine.dispose()
