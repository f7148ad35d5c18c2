"""Store first, process second: the inbox on SQLite and PostgreSQL (no broker; the MQTT path is in test_mqtt).

Step one stores a message and commits (then the consumer acknowledges it); step two claims
pending rows and applies each in one transaction with its processed mark. A crash between
the steps loses nothing, a redelivery changes nothing, failures are retried with backoff
and dead-lettered after the last attempt.
"""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from fastapi.testclient import TestClient
from alembic import command
from sqlalchemy import func, select, text
from sqlalchemy.exc import DataError, OperationalError

from central.clock import FakeClock
from central.db import Database, alembic_config, create_db_engine
from central.ingest.flows import Outcome
from central.ingest.models import DeadLetter, InboundMessage, InboxOutcome, InboxState
from central.ingest.processor import Ingestor, Stored
from central.ingest.worker import InboxWorker
from central.metrics import Metrics
from central.outbox.models import OutboundMessage
from central.tickets.models import TicketEvent
from device_profiles import ProfileRegistry
from tests.integration.central.support import T0, fault, statuses, tickets, topic_of, wait_until

FAILED = "storeguard_central_messages_failed_total"
DEAD = "storeguard_central_messages_dead_lettered_total"
ACCEPTED = "storeguard_central_messages_accepted_total"
DUPLICATE = "storeguard_central_messages_duplicate_total"


def rows(db: Database) -> list[InboundMessage]:
    with db.session() as session:
        return list(session.scalars(select(InboundMessage).order_by(InboundMessage.id)))


def count(db: Database, model: type) -> int:
    with db.session() as session:
        return session.scalar(select(func.count()).select_from(model)) or 0


class BrokenProfiles(ProfileRegistry):
    """The real profiles, except that looking up a device model raises `error` (while armed)."""

    def __init__(self, profiles: ProfileRegistry, error: Exception) -> None:
        super().__init__({m: profiles.get(m) for m in profiles.models()})
        self.error: Exception | None = error

    def __contains__(self, model: str) -> bool:
        if self.error is not None:
            raise self.error
        return super().__contains__(model)


def test_a_message_is_stored_pending_and_applied_by_the_next_worker(db: Database, metrics: Metrics,
                                                                   clock: FakeClock, profiles: ProfileRegistry) -> None:
    """Crash between the two steps: one ingestor stores and is gone; a new one, on its own
    connection pool, applies the message; a redelivery afterwards changes nothing."""
    message = fault()
    crashed = Ingestor(database=Database(db.url), profiles=profiles, metrics=Metrics(), clock=clock)
    stored = crashed.store(topic_of(message), message.to_bytes())
    assert stored.stored is Stored.STORED and stored.kind == "fault"
    [row] = rows(db)
    assert (row.state, row.message_id, row.topic, row.payload) == (InboxState.PENDING, message.message_id,
                                                                   topic_of(message), message.to_bytes())
    assert (row.store_id, row.seq, row.received_at, row.processed_at) == ("store-1", 1, T0, None)
    assert tickets(db) == [] and crashed.pending() == 1  # stored, nothing applied yet

    clock.advance(2)
    restarted = Ingestor(database=db, profiles=profiles, metrics=metrics, clock=clock)
    processed = restarted.process_next()
    assert processed is not None and processed.error is None
    [ticket] = tickets(db)
    assert processed.result.created_ticket_id == ticket.id
    [row] = rows(db)
    assert (row.state, row.outcome, row.processed_at) == (InboxState.PROCESSED, InboxOutcome.TICKET_CREATED,
                                                          T0 + timedelta(seconds=2))
    assert restarted.process_next() is None and restarted.pending() == 0
    assert metrics.value(ACCEPTED, kind="fault") == 1

    before = (len(statuses(db)), count(db, TicketEvent), ticket.version)
    again = restarted.store(topic_of(message), message.to_bytes())  # the broker redelivers it
    assert again.stored is Stored.DUPLICATE and again.row_id is None
    assert restarted.process_next() is None
    assert (len(statuses(db)), count(db, TicketEvent), tickets(db)[0].version) == before
    assert len(rows(db)) == 1 and metrics.value(DUPLICATE, kind="fault") == 1


def test_a_message_that_breaks_the_contract_is_not_stored(db: Database, ingestor: Ingestor, metrics: Metrics) -> None:
    result = ingestor.store("storeguard/v1/store-1/fault", b'{"message_id": "x"}')
    assert result.stored is Stored.REJECTED and result.reason
    assert rows(db) == [] and metrics.value("storeguard_central_messages_rejected_total", reason=result.reason) == 1


def test_pending_messages_are_applied_in_the_order_they_were_stored(db: Database, ingestor: Ingestor) -> None:
    raised, cleared = fault(seq=1), fault(seq=2, state="cleared", at=T0 + timedelta(minutes=5))
    for message in (raised, cleared):
        ingestor.store(topic_of(message), message.to_bytes())
    applied = [ingestor.process_next(), ingestor.process_next(), ingestor.process_next()]
    assert [p.row_id if p else None for p in applied] == [r.id for r in rows(db)] + [None]
    [ticket] = tickets(db)
    assert ticket.fault_active is False
    assert [r.outcome for r in rows(db)] == [InboxOutcome.TICKET_CREATED, InboxOutcome.APPLIED]


def test_a_failing_message_is_retried_with_backoff_then_dead_lettered(db: Database, metrics: Metrics,
                                                                     clock: FakeClock,
                                                                     profiles: ProfileRegistry) -> None:
    broken = BrokenProfiles(profiles, RuntimeError("a bug in applying"))
    ingestor = Ingestor(database=db, profiles=broken, metrics=metrics, clock=clock, max_attempts=3,
                        retry_delay_s=10)
    message = fault()
    ingestor.store(topic_of(message), message.to_bytes())
    first = ingestor.process_next()
    assert first is not None and isinstance(first.error, RuntimeError) and not first.dead_lettered
    [row] = rows(db)
    assert (row.state, row.attempts, row.first_failed_at) == (InboxState.PENDING, 1, T0)
    assert row.next_attempt_at == T0 + timedelta(seconds=10) and "a bug in applying" in (row.last_error or "")
    assert count(db, OutboundMessage) == 0 and tickets(db) == []  # the failed apply left nothing behind

    assert ingestor.process_next() is None  # backing off
    clock.advance(10)
    second = ingestor.process_next()
    assert second is not None and not second.dead_lettered
    assert rows(db)[0].next_attempt_at == T0 + timedelta(seconds=30)  # 10 s, then 20 s after the second failure
    clock.advance(19)
    assert ingestor.process_next() is None
    clock.advance(1)
    third = ingestor.process_next()
    assert third is not None and third.dead_lettered
    [row] = rows(db)
    assert (row.state, row.outcome, row.attempts) == (InboxState.PROCESSED, InboxOutcome.DEAD_LETTERED, 3)
    with db.session() as session:
        [letter] = session.scalars(select(DeadLetter))
        assert (letter.message_id, letter.topic, letter.payload) == (message.message_id, topic_of(message),
                                                                     message.to_bytes())
        assert letter.attempts == 3 and letter.first_failed_at == T0 and letter.last_failed_at == clock.now()
    assert metrics.value(FAILED) == 3 and metrics.value(DEAD) == 1 and metrics.value(ACCEPTED, kind="fault") == 0
    assert ingestor.process_next() is None and ingestor.pending() == 0


def test_a_message_that_succeeds_on_retry_is_applied_once(db: Database, metrics: Metrics, clock: FakeClock,
                                                         profiles: ProfileRegistry) -> None:
    broken = BrokenProfiles(profiles, RuntimeError("a race the code did not expect"))
    ingestor = Ingestor(database=db, profiles=broken, metrics=metrics, clock=clock, retry_delay_s=0)
    message = fault()
    ingestor.store(topic_of(message), message.to_bytes())
    assert ingestor.process_next().error is not None  # type: ignore[union-attr]
    broken.error = None
    assert ingestor.process_next().error is None  # type: ignore[union-attr]
    assert len(tickets(db)) == 1 and count(db, DeadLetter) == 0
    [row] = rows(db)
    assert (row.outcome, row.attempts) == (InboxOutcome.TICKET_CREATED, 1)  # the failure stays on record
    assert metrics.value(FAILED) == 1 and metrics.value(ACCEPTED, kind="fault") == 1


def test_an_error_no_retry_can_fix_is_dead_lettered_at_once(db: Database, metrics: Metrics, clock: FakeClock,
                                                            profiles: ProfileRegistry) -> None:
    permanent = DataError("INSERT ...", {}, Exception("value out of range"))
    ingestor = Ingestor(database=db, profiles=BrokenProfiles(profiles, permanent), metrics=metrics, clock=clock)
    message = fault()
    ingestor.store(topic_of(message), message.to_bytes())
    processed = ingestor.process_next()
    assert processed is not None and processed.dead_lettered
    [row] = rows(db)
    assert (row.outcome, row.attempts) == (InboxOutcome.DEAD_LETTERED, 1)
    assert count(db, DeadLetter) == 1 and metrics.value(DEAD) == 1


def test_a_transient_error_leaves_the_message_pending_and_untouched(db: Database, metrics: Metrics,
                                                                   clock: FakeClock,
                                                                   profiles: ProfileRegistry) -> None:
    down = OperationalError("SELECT ...", {}, Exception("server closed the connection unexpectedly"))
    broken = BrokenProfiles(profiles, down)
    ingestor = Ingestor(database=db, profiles=broken, metrics=metrics, clock=clock)
    message = fault()
    ingestor.store(topic_of(message), message.to_bytes())
    with pytest.raises(OperationalError):
        ingestor.process_next()
    [row] = rows(db)
    assert (row.state, row.attempts, row.last_error, row.next_attempt_at) == (InboxState.PENDING, 0, None, None)
    assert metrics.value(FAILED) == 0 and count(db, DeadLetter) == 0
    broken.error = None  # the database is back
    assert ingestor.process_next() is not None and len(tickets(db)) == 1


def test_process_does_both_steps_and_raises_a_failed_attempt(db: Database, metrics: Metrics, clock: FakeClock,
                                                             profiles: ProfileRegistry) -> None:
    ingestor = Ingestor(database=db, profiles=BrokenProfiles(profiles, RuntimeError("boom")), metrics=metrics,
                        clock=clock)
    message = fault()
    with pytest.raises(RuntimeError, match="boom"):
        ingestor.process(topic_of(message), message.to_bytes())
    assert rows(db)[0].attempts == 1  # recorded, and still pending for the worker to retry
    assert ingestor.process(topic_of(message), message.to_bytes()).outcome is Outcome.DUPLICATE


def test_two_workers_draining_one_inbox_apply_each_message_once(db: Database, clock: FakeClock,
                                                               profiles: ProfileRegistry) -> None:
    """Two ingestors (each its own engine, as two processes) drain 40 stored faults at once.
    PostgreSQL: SKIP LOCKED hands each row to one of them; SQLite: writers take turns."""
    storer = Ingestor(database=db, profiles=profiles, metrics=Metrics(), clock=clock)
    sent = [fault(device=f"case-{i % 10:02d}", seq=i, at=T0 + timedelta(seconds=i)) for i in range(40)]
    for message in sent:
        storer.store(topic_of(message), message.to_bytes())
    applied: list[list[int]] = [[], []]
    errors: list[BaseException] = []
    barrier = threading.Barrier(2)

    def drain(index: int) -> None:
        database = Database(db.url)
        worker = Ingestor(database=database, profiles=profiles, metrics=Metrics(), clock=clock)
        try:
            barrier.wait()
            while (processed := worker.process_next()) is not None:
                assert processed.error is None, processed.error
                applied[index].append(processed.row_id)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)
        finally:
            database.dispose()

    threads = [threading.Thread(target=drain, args=(i,)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert errors == []
    assert sorted(applied[0] + applied[1]) == [r.id for r in rows(db)]  # every row once, none twice
    if db.dialect == "postgresql":
        assert applied[0] and applied[1], f"one worker did everything: {[len(a) for a in applied]}"
    assert len(tickets(db)) == 10 and {r.state for r in rows(db)} == {InboxState.PROCESSED}
    assert sum(t.raise_count for t in tickets(db)) + sum(
        1 for r in rows(db) if r.outcome is InboxOutcome.OUT_OF_ORDER) == 40


def test_the_worker_applies_at_once_when_woken_and_polls_for_other_workers_rows(
        db: Database, clock: FakeClock, profiles: ProfileRegistry) -> None:  # fmt: skip
    mine = Ingestor(database=db, profiles=profiles, metrics=Metrics(), clock=clock)
    worker = InboxWorker(ingestor=mine, metrics=Metrics(), poll_s=3.0)
    other = Ingestor(database=Database(db.url), profiles=profiles, metrics=Metrics(), clock=clock)
    left_over = fault(device="case-09")
    other.store(topic_of(left_over), left_over.to_bytes())  # stored by a worker that then died
    worker.start()
    try:
        wait_until(lambda: mine.pending() == 0, timeout=5)  # picked up on start
        assert len(tickets(db)) == 1
        message = fault(device="case-01")
        mine.store(topic_of(message), message.to_bytes())
        worker.wake()
        wait_until(lambda: mine.pending() == 0, timeout=2.5)  # before the next poll
        late = fault(device="case-02")
        other.store(topic_of(late), late.to_bytes())  # no wake: found by polling
        wait_until(lambda: len(tickets(db)) == 3, timeout=10)
    finally:
        worker.stop()


@pytest.mark.empty_database
def test_the_migration_keeps_the_ledger_and_refuses_to_drop_pending_messages(database_url: str) -> None:
    engine = create_db_engine(database_url)
    at = T0.replace(tzinfo=None) if engine.dialect.name == "sqlite" else T0
    insert = text("INSERT INTO inbound_messages (message_id, store_id, kind, seq, received_at) "
                  "VALUES (:id, 's1', 'fault', 1, :at)")
    try:
        with engine.begin() as connection:
            command.upgrade(alembic_config(connection), "0003")
            connection.execute(insert, {"id": "before-0008", "at": at})
        with engine.begin() as connection:
            command.upgrade(alembic_config(connection), "0008")
        with engine.begin() as connection:
            row = connection.execute(text("SELECT state, outcome, processed_at, attempts, topic "
                                          "FROM inbound_messages")).one()
            assert (row.state, row.outcome, row.attempts, row.topic) == ("processed", "applied", 0, None)
            assert row.processed_at is not None  # applied when it was ledgered
            connection.execute(text("INSERT INTO inbound_messages (message_id, store_id, kind, received_at, "
                                    "topic, payload, state, attempts) VALUES ('waiting', 's1', 'fault', :at, "
                                    "'t', :payload, 'pending', 0)"), {"at": at, "payload": b"{}"})
        with pytest.raises(RuntimeError, match="not yet applied"), engine.begin() as connection:
            command.downgrade(alembic_config(connection), "0003")
        with engine.begin() as connection:
            connection.execute(text("DELETE FROM inbound_messages WHERE message_id = 'waiting'"))
        with engine.begin() as connection:
            command.downgrade(alembic_config(connection), "0003")
        with engine.connect() as connection:
            assert connection.execute(text("SELECT message_id FROM inbound_messages")).scalars().all() == [
                "before-0008"]
    finally:
        engine.dispose()


def test_the_pending_gauge_counts_stored_messages(client: TestClient) -> None:
    ingestor: Ingestor = client.app.state.runtime.ingestor  # type: ignore[attr-defined]
    for device in ("case-01", "case-02"):
        message = fault(device=device)
        ingestor.store(topic_of(message), message.to_bytes())
    assert "storeguard_central_inbound_pending 2" in client.get("/metrics").text
    ingestor.process_next()
    assert "storeguard_central_inbound_pending 1" in client.get("/metrics").text


def test_a_batch_applies_many_messages_in_one_transaction_in_store_order(db: Database, ingestor: Ingestor) -> None:
    stored = []
    for store, device in (("store-2", "case-01"), ("store-1", "case-01"), ("store-2", "case-02"),
                          ("store-1", "case-02")):
        message = fault(store=store, device=device)
        stored.append(ingestor.store(topic_of(message), message.to_bytes()).row_id)
    assert [p.row_id for p in ingestor.process_batch(3, budget_s=60)] == [stored[1], stored[0], stored[2]]  # store, then arrival
    assert ingestor.pending() == 1
    assert [p.row_id for p in ingestor.process_batch(3, budget_s=60)] == [stored[3]]
    assert ingestor.process_batch(3, budget_s=60) == []
    assert len(tickets(db)) == 4


class OneBadModel(ProfileRegistry):
    """The real profiles; looking up the model "bad-model" raises (a bug only it triggers)."""

    def __contains__(self, model: str) -> bool:
        if model == "bad-model":
            raise ValueError("a bug only bad-model triggers")
        return super().__contains__(model)


def test_a_failing_message_in_a_batch_is_recorded_and_the_rest_commit(db: Database, metrics: Metrics,
                                                                       clock: FakeClock,
                                                                       profiles: ProfileRegistry) -> None:
    ingestor = Ingestor(database=db, profiles=OneBadModel({m: profiles.get(m) for m in profiles.models()}),
                        metrics=metrics, clock=clock, max_attempts=3, retry_delay_s=30)
    messages = [fault(device="case-01"), fault(device="case-02", model="bad-model"), fault(device="case-03")]
    for message in messages:
        ingestor.store(topic_of(message), message.to_bytes())
    done = ingestor.process_batch(10, budget_s=60)
    assert [p.error is not None for p in done] == [False, True, False]
    assert sorted(t.device_id for t in tickets(db)) == ["case-01", "case-03"]
    bad = next(r for r in rows(db) if r.message_id == messages[1].message_id)
    assert (bad.state, bad.attempts, bad.next_attempt_at) == (InboxState.PENDING, 1, clock.now() + timedelta(seconds=30))
    assert "a bug only bad-model triggers" in (bad.last_error or "")
    assert ingestor.process_batch(10, budget_s=60) == []  # not due before its backoff is over


def test_a_batch_stops_at_its_time_budget_and_leaves_the_rest_pending(db: Database, ingestor: Ingestor) -> None:
    for device in ("case-01", "case-02", "case-03"):
        message = fault(device=device)
        ingestor.store(topic_of(message), message.to_bytes())
    assert len(ingestor.process_batch(10, budget_s=0)) == 1  # at least one, then the budget is spent
    assert ingestor.pending() == 2
    assert len(ingestor.process_batch(10, budget_s=60)) == 2


def test_under_a_backlog_the_claim_doubles_up_to_the_limit(db: Database, ingestor: Ingestor) -> None:
    for n in range(12):
        message = fault(device=f"case-{n:02d}")
        ingestor.store(topic_of(message), message.to_bytes())
    # a zero budget fits one message; each full claim means more are waiting: 1, 2, 4, then the limit
    assert [len(ingestor.process_batch(5, budget_s=0)) for _ in range(4)] == [1, 2, 4, 5]
    assert len(ingestor.process_batch(5, budget_s=0)) == 0  # the backlog is gone
    assert len(tickets(db)) == 12
    message = fault(device="case-99")
    ingestor.store(topic_of(message), message.to_bytes())
    assert len(ingestor.process_batch(5, budget_s=0)) == 1  # back to the budget's size
