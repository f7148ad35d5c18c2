"""Dead letters in the database (SQLite and PostgreSQL), and real database errors classified."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from sqlalchemy import select, text

from central.db import Database
from central.ingest.dead_letters import PoisonMessage, digest
from central.ingest.handler import FailureKind, classify
from central.ingest.models import DeadLetter
from central.ingest.processor import Ingestor
from tests.integration.central.support import T0, fault

TOPIC = "storeguard/v1/store-1/fault"


def letters(database: Database) -> list[DeadLetter]:
    with database.session() as session:
        return list(session.scalars(select(DeadLetter).order_by(DeadLetter.id)))


def test_a_dead_letter_keeps_the_raw_message_and_a_redelivery_adds_its_attempts(db: Database,
                                                                                ingestor: Ingestor) -> None:
    message = fault()
    first = PoisonMessage(topic=TOPIC, payload=message.to_bytes(), error="DataError: nope", attempts=3,
                          first_failed_at=T0, last_failed_at=T0 + timedelta(seconds=1))
    ingestor.dead_letter(first)
    ingestor.dead_letter(PoisonMessage(topic=TOPIC, payload=message.to_bytes(), error="DataError: still",
                                       attempts=2, first_failed_at=T0 + timedelta(minutes=5),
                                       last_failed_at=T0 + timedelta(minutes=6)))
    [row] = letters(db)
    assert row.digest == digest(TOPIC, message.to_bytes())
    assert (row.topic, row.store_id, row.message_id, row.payload) == (TOPIC, "store-1", message.message_id,
                                                                      message.to_bytes())
    assert row.attempts == 5 and row.error == "DataError: still"
    assert row.first_failed_at == T0 and row.last_failed_at == T0 + timedelta(minutes=6)


def test_any_bytes_and_any_error_text_can_be_stored(db: Database, ingestor: Ingestor) -> None:
    """Storing a poison message must not fail on what made it poison."""
    payload = b'\x00\xff{"message_id": "\\u0000bad"}'
    ingestor.dead_letter(PoisonMessage(topic="storeguard/v1/NOT A STORE/fault", payload=payload,
                                       error="bad byte \x00 " + "x" * 10_000, attempts=1,
                                       first_failed_at=T0, last_failed_at=T0))
    [row] = letters(db)
    assert row.payload == payload and row.store_id is None and row.message_id is None
    assert row.error.startswith("bad byte \\x00 ") and len(row.error) == 4000


def test_real_database_errors_are_classified(postgres_url: str) -> None:
    """PostgreSQL's own errors: bad data is permanent, a lock timeout is transient."""
    database = Database(postgres_url)
    try:
        with database.engine.connect() as connection, pytest.raises(Exception) as bad_data:
            connection.execute(text("SELECT CAST('not a number' AS INTEGER)"))
        assert classify(bad_data.value) is FailureKind.PERMANENT
        with database.engine.begin() as connection:
            connection.execute(text("CREATE TABLE t (id INTEGER PRIMARY KEY)"))
            connection.execute(text("INSERT INTO t VALUES (1)"))
        holding, release = threading.Event(), threading.Event()

        def hold_the_row() -> None:
            with database.engine.begin() as connection:
                connection.execute(text("SELECT * FROM t FOR UPDATE"))
                holding.set()
                release.wait(10)

        holder = threading.Thread(target=hold_the_row)
        holder.start()
        try:
            assert holding.wait(10)
            with database.engine.begin() as connection, pytest.raises(Exception) as locked:
                connection.execute(text("SET LOCAL lock_timeout = '50ms'"))
                connection.execute(text("SELECT * FROM t FOR UPDATE"))
            assert classify(locked.value) is FailureKind.TRANSIENT
        finally:
            release.set()
            holder.join(10)
    finally:
        database.dispose()
