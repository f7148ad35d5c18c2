"""Work deferred to the end of a unit of work (central.deferred) on a real SQLite session."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.orm import Session

from central import deferred
from central.db import Database


class Note:
    """Deferred work that records the order it ran in, and what it saw."""

    def __init__(self, log: list[str], name: str) -> None:
        self.log, self.name = log, name

    def __copy__(self) -> Note:
        return Note(self.log, self.name)

    def __call__(self, session: Session) -> None:
        self.log.append(self.name)
        session.execute(text("INSERT INTO ran (name) VALUES (:name)"), {"name": self.name})


@pytest.fixture
def database(tmp_path: Path) -> Database:
    database = Database(f"sqlite:///{tmp_path / 'deferred.db'}")
    with database.engine.begin() as connection:
        connection.execute(text("CREATE TABLE ran (name TEXT)"))
    return database


def ran(database: Database) -> list[str]:
    with database.engine.connect() as connection:
        return [row.name for row in connection.execute(text("SELECT name FROM ran ORDER BY rowid"))]


def test_a_commit_runs_each_key_once_in_first_deferred_order(database: Database) -> None:
    log: list[str] = []
    with database.session() as session, session.begin():
        deferred.defer(session, "a", Note(log, "a1"))
        deferred.defer(session, "b", Note(log, "b"))
        deferred.defer(session, "a", Note(log, "a2"))  # the same key again: one entry, the newer work
        assert log == []
    assert log == ["a2", "b"]
    assert ran(database) == ["a2", "b"]  # in the committed transaction


def test_a_unit_settles_before_its_savepoint_is_released(database: Database) -> None:
    log: list[str] = []
    with database.session() as session, session.begin():
        with deferred.unit(session):
            deferred.defer(session, "a", Note(log, "a"))
        assert log == ["a"]  # ran inside the unit, not at the commit
        assert deferred.pending(session) == {}
    assert ran(database) == ["a"]


def test_a_failed_unit_drops_its_work_and_keeps_what_came_before(database: Database) -> None:
    log: list[str] = []
    with database.session() as session, session.begin():
        deferred.defer(session, "before", Note(log, "before"))
        with pytest.raises(RuntimeError), deferred.unit(session):
            deferred.defer(session, "inside", Note(log, "inside"))
            raise RuntimeError("the message failed")
        assert set(deferred.pending(session)) == {"before"}
    assert log == ["before"]
    assert ran(database) == ["before"]


def test_a_failing_work_item_fails_its_unit(database: Database) -> None:
    def boom(_session: Session) -> None:
        raise ValueError("planning failed")

    with database.session() as session, session.begin():
        with pytest.raises(ValueError), deferred.unit(session):
            deferred.defer(session, "x", boom)
        assert deferred.pending(session) == {}


def test_a_rollback_discards_the_work(database: Database) -> None:
    log: list[str] = []
    with database.session() as session:
        session.begin()
        deferred.defer(session, "a", Note(log, "a"))
        session.rollback()
        assert deferred.pending(session) == {}
        with session.begin():
            pass
    assert log == [] and ran(database) == []
