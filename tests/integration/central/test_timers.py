"""Durable timers: fired once at their deadline, moved by rescheduling, retried, parked, race-safe."""

from __future__ import annotations

import itertools
import threading
import time
from collections import Counter
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from central.db import Database, migrate
from central.timers import service as timers
from central.timers.models import Timer
from central.timers.service import TimerRegistry
from tests.integration.central.support import T0


@pytest.fixture
def database(database_url: str):  # type: ignore[no-untyped-def]
    migrate(database_url)
    db = Database(database_url)
    yield db
    db.dispose()


def _schedule(database: Database, key: str, due_in_s: float, kind: str = "probe", **data: object) -> None:
    with database.session() as session, session.begin():
        timers.schedule(session=session, key=key, kind=kind, due_at=T0 + timedelta(seconds=due_in_s), now=T0,
                        data=data)


def _rows(database: Database) -> list[Timer]:
    with database.session() as session:
        return list(session.scalars(select(Timer).order_by(Timer.key)))


def _recording_registry(fired: list[str], kind: str = "probe") -> TimerRegistry:
    registry = TimerRegistry()
    registry.register(kind, lambda _session, timer, _now: fired.append(timer.key))
    return registry


def test_a_timer_fires_once_at_its_deadline_and_is_gone(database: Database) -> None:
    fired: list[str] = []
    registry = _recording_registry(fired)
    _schedule(database, "a", 60)
    assert timers.run_pass(database=database, registry=registry, now=T0 + timedelta(seconds=59)).fired_total == 0
    result = timers.run_pass(database=database, registry=registry, now=T0 + timedelta(seconds=60))
    assert result.fired == {"probe": 1} and fired == ["a"]
    assert _rows(database) == []
    assert timers.run_pass(database=database, registry=registry, now=T0 + timedelta(hours=1)).fired_total == 0
    assert fired == ["a"]


def test_scheduling_a_key_again_moves_its_deadline(database: Database) -> None:
    _schedule(database, "a", 60)
    _schedule(database, "a", 600, note="moved")
    rows = _rows(database)
    assert len(rows) == 1
    assert rows[0].due_at == T0 + timedelta(seconds=600) and rows[0].data == {"note": "moved"}


def test_cancel_by_key_and_by_kind(database: Database) -> None:
    _schedule(database, "a", 10)
    _schedule(database, "b", 10, kind="other")
    _schedule(database, "c", 10)
    with database.session() as session, session.begin():
        assert timers.cancel(session=session, keys=["a"]) == 1
        assert timers.cancel(session=session, keys=["a", "b", "c"], kinds=["other"]) == 1
    assert [t.key for t in _rows(database)] == ["c"]
    with pytest.raises(ValueError), database.session() as session:
        timers.cancel(session=session)


def test_a_failing_handler_is_retried_then_parked_without_blocking_others(database: Database) -> None:
    fired: list[str] = []
    registry = _recording_registry(fired)

    def boom(_session: Session, _timer: Timer, _now: object) -> None:
        raise RuntimeError("downstream unavailable")

    registry.register("boom", boom)
    _schedule(database, "bad", 0, kind="boom")
    _schedule(database, "good", 0)
    now = T0
    result = timers.run_pass(database=database, registry=registry, now=now, max_attempts=3)
    assert fired == ["good"] and result.retried == 1
    bad = _rows(database)[0]
    assert bad.attempts == 1 and bad.due_at == now + timedelta(seconds=timers.RETRY_DELAYS_S[0])
    assert bad.last_error == "RuntimeError: downstream unavailable"
    for _ in range(2):
        now += timedelta(hours=1)
        result = timers.run_pass(database=database, registry=registry, now=now, max_attempts=3)
    assert result.parked == 1
    parked = _rows(database)[0]
    assert parked.failed_at == now and parked.attempts == 3
    assert timers.run_pass(database=database, registry=registry, now=now + timedelta(days=1)).fired_total == 0
    with database.session() as session:
        assert timers.count_pending(session=session) == 0
    _schedule(database, "bad", 0, kind="boom")  # scheduling again un-parks it
    assert _rows(database)[0].failed_at is None


def test_an_unknown_kind_is_parked_not_lost(database: Database) -> None:
    _schedule(database, "x", 0, kind="nobody-handles-this")
    result = timers.run_pass(database=database, registry=TimerRegistry(), now=T0, max_attempts=1)
    assert result.parked == 1
    assert "nobody-handles-this" in (_rows(database)[0].last_error or "")


def test_a_handler_may_schedule_its_own_key_again(database: Database) -> None:
    registry = TimerRegistry()

    def again(session: Session, timer: Timer, now: object) -> None:
        count = int(timer.data.get("count", 0)) + 1
        if count < 3:
            timers.schedule(session=session, key=timer.key, kind=timer.kind, due_at=timer.due_at + timedelta(
                minutes=1), now=T0, data={"count": count})

    registry.register("probe", again)
    _schedule(database, "repeat", 0)
    for minute in range(5):
        timers.run_pass(database=database, registry=registry, now=T0 + timedelta(minutes=minute))
    assert _rows(database) == []


def test_claims_are_batched_and_a_pass_fires_every_due_timer(database: Database) -> None:
    fired: list[str] = []
    with database.session() as session, session.begin():
        for i in range(450):
            timers.schedule(session=session, key=f"k{i:04d}", kind="probe", due_at=T0, now=T0)
    result = timers.run_pass(database=database, registry=_recording_registry(fired), now=T0, batch_size=100)
    assert result.fired_total == 450 and len(set(fired)) == 450


def test_batches_after_the_first_fit_the_time_budget(database: Database) -> None:
    """A batch holds its timers' tickets until it commits: slow handlers make small batches."""
    batches: list[int] = []  # the batch (session, one per transaction) of each firing
    numbers = itertools.count()

    def slow(session: Session, _timer: Any, _now: Any) -> None:
        batches.append(session.info.setdefault("probe_batch", next(numbers)))
        time.sleep(0.05)

    registry = TimerRegistry()
    registry.register("slow", slow)
    with database.session() as session, session.begin():
        for i in range(30):
            timers.schedule(session=session, key=f"s{i:02d}", kind="slow", due_at=T0, now=T0)
    result = timers.run_pass(database=database, registry=registry, now=T0, budget_s=0.2)
    assert result.fired_total == 30
    sizes = [len(list(group)) for _, group in itertools.groupby(batches)]
    assert sizes[0] == timers.FIRST_CLAIM  # before it knows the cost
    assert max(sizes[1:]) <= 4 and sum(sizes) == 30  # 0.2 s of 50 ms handlers (and the claim, the commit)


def test_several_workers_never_fire_a_timer_twice(postgres_url: str) -> None:
    migrate(postgres_url)
    database = Database(postgres_url)
    try:
        with database.session() as session, session.begin():
            for i in range(600):
                timers.schedule(session=session, key=f"k{i:04d}", kind="probe", due_at=T0, now=T0)
        fired: list[str] = []
        lock = threading.Lock()
        by_worker: Counter[int] = Counter()

        def handler(_session: Session, timer: Timer, _now: object) -> None:
            with lock:
                fired.append(timer.key)
                by_worker[threading.get_ident()] += 1

        registry = TimerRegistry()
        registry.register("probe", handler)
        start = threading.Barrier(4)

        def worker() -> None:
            start.wait()
            timers.run_pass(database=database, registry=registry, now=T0, batch_size=20)

        threads = [threading.Thread(target=worker) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        assert len(fired) == 600 and len(set(fired)) == 600
        assert len(by_worker) >= 2, "SKIP LOCKED should let several workers share the due timers"
    finally:
        database.dispose()


def test_a_timer_cancelled_or_moved_by_an_earlier_handler_in_the_batch_does_not_fire(database: Database) -> None:
    fired: list[str] = []
    registry = TimerRegistry()

    def first(session: Session, timer: Timer, now: object) -> None:
        fired.append(timer.key)
        timers.cancel(session=session, keys=["b-cancelled"])
        timers.schedule(session=session, key="c-moved", kind="probe", due_at=T0 + timedelta(hours=1), now=T0)

    registry.register("first", first)
    registry.register("probe", lambda _session, timer, _now: fired.append(timer.key))
    with database.session() as session, session.begin():
        timers.schedule(session=session, key="a", kind="first", due_at=T0 - timedelta(seconds=2), now=T0)
        timers.schedule(session=session, key="b-cancelled", kind="probe", due_at=T0 - timedelta(seconds=1), now=T0)
        timers.schedule(session=session, key="c-moved", kind="probe", due_at=T0, now=T0)
    result = timers.run_pass(database=database, registry=registry, now=T0)
    assert fired == ["a"] and result.skipped == 2
    assert [(t.key, t.due_at) for t in _rows(database)] == [("c-moved", T0 + timedelta(hours=1))]
