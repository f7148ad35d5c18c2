"""Retry, give up, acknowledge: the ingest handler (store step) with a fake store and dead-letter sink."""

from __future__ import annotations

import logging
import threading

import pytest
from sqlalchemy.exc import DataError, DBAPIError, IntegrityError, OperationalError, ProgrammingError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError

from central.clock import FakeClock
from central.ingest.dead_letters import PoisonMessage
from central.ingest.handler import FailureKind, MessageHandler, classify
from central.metrics import Metrics

TOPIC = "storeguard/v1/store-1/fault"
FAILED = "storeguard_central_messages_failed_total"
DEAD = "storeguard_central_messages_dead_lettered_total"
RETRIES = "storeguard_central_db_retries_total"


def _db_error(cls: type[DBAPIError], text: str = "boom") -> DBAPIError:
    return cls("INSERT ...", {}, Exception(text))


class Processor:
    """Fails every payload starting with b"poison" with `error`; `transient` failures come first."""

    def __init__(self, error: Exception | None = None, transient: int = 0, stop_after: int | None = None,
                 stopping: threading.Event | None = None) -> None:
        self.error = error or RuntimeError("a bug")
        self.transient = transient
        self.calls: list[bytes] = []
        self.applied: list[bytes] = []
        self._stop_after, self._stopping = stop_after, stopping

    def store(self, _topic: str, payload: bytes) -> None:
        self.calls.append(payload)
        if self._stop_after is not None and len(self.calls) >= self._stop_after and self._stopping:
            self._stopping.set()
        if self.transient:
            self.transient -= 1
            raise _db_error(OperationalError, "server closed the connection unexpectedly")
        if payload.startswith(b"poison"):
            raise self.error
        self.applied.append(payload)


class Sink:
    def __init__(self, failures: list[Exception] | None = None) -> None:
        self.failures = list(failures or [])
        self.letters: list[PoisonMessage] = []

    def dead_letter(self, message: PoisonMessage) -> None:
        if self.failures:
            raise self.failures.pop(0)
        self.letters.append(message)


def handler(processor: Processor, sink: Sink, metrics: Metrics, clock: FakeClock | None = None,
            stopping: threading.Event | None = None) -> MessageHandler:
    return MessageHandler(store=processor, dead_letters=sink, metrics=metrics, clock=clock or FakeClock(),
                          stopping=stopping or threading.Event(), max_attempts=3, retry_delay_s=0)


def test_ingest_continues_past_more_poison_messages_than_a_broker_window() -> None:
    """25 poison messages (Mosquitto's default window is 20), then a good one: every one may be acked."""
    processor, sink, metrics = Processor(), Sink(), Metrics()
    handle = handler(processor, sink, metrics).handle
    acks = [handle(TOPIC, b"poison-%d" % i) for i in range(25)] + [handle(TOPIC, b"good")]
    assert acks == [True] * 26
    assert processor.applied == [b"good"]
    assert [letter.payload for letter in sink.letters] == [b"poison-%d" % i for i in range(25)]
    assert {letter.attempts for letter in sink.letters} == {3}
    assert sink.letters[0].error == "builtins.RuntimeError: a bug"
    assert metrics.value(DEAD) == 25 and metrics.value(FAILED) == 75 and metrics.value(RETRIES) == 0


def test_an_error_no_retry_can_fix_is_dead_lettered_at_once() -> None:
    processor, sink, metrics = Processor(error=_db_error(DataError, "invalid input syntax for type json")), Sink(), \
        Metrics()
    assert handler(processor, sink, metrics).handle(TOPIC, b"poison") is True
    assert len(processor.calls) == 1 and sink.letters[0].attempts == 1
    assert "DataError" in sink.letters[0].error and metrics.value(DEAD) == 1


def test_a_failure_that_goes_away_on_retry_is_applied_not_dead_lettered() -> None:
    class Racy(Processor):
        def store(self, topic: str, payload: bytes) -> None:
            self.calls.append(payload)
            if len(self.calls) == 1:
                raise _db_error(IntegrityError, "duplicate key")  # e.g. a race the code did not expect
            self.applied.append(payload)

    processor, sink, metrics = Racy(), Sink(), Metrics()
    assert handler(processor, sink, metrics).handle(TOPIC, b"good") is True
    assert processor.applied == [b"good"] and sink.letters == []
    assert metrics.value(FAILED) == 1 and metrics.value(DEAD) == 0


def test_the_attempt_times_come_from_the_clock() -> None:
    clock = FakeClock()
    start = clock.now()

    class Slow(Processor):
        def store(self, topic: str, payload: bytes) -> None:
            clock.advance(10)
            super().store(topic, payload)

    sink = Sink()
    handler(Slow(), sink, Metrics(), clock=clock).handle(TOPIC, b"poison")
    [letter] = sink.letters
    assert (letter.first_failed_at - start).total_seconds() == 10
    assert (letter.last_failed_at - start).total_seconds() == 30


def test_transient_errors_are_retried_and_never_dead_lettered() -> None:
    processor, sink, metrics = Processor(transient=4), Sink(), Metrics()
    assert handler(processor, sink, metrics).handle(TOPIC, b"good") is True
    assert processor.applied == [b"good"] and sink.letters == []
    assert metrics.value(RETRIES) == 4 and metrics.value(FAILED) == 0


def test_stopping_while_the_database_is_down_leaves_the_message_unacknowledged() -> None:
    stopping = threading.Event()
    processor = Processor(transient=1000, stop_after=5, stopping=stopping)
    sink, metrics = Sink(), Metrics()
    assert handler(processor, sink, metrics, stopping=stopping).handle(TOPIC, b"good") is False
    assert len(processor.calls) == 5 and sink.letters == [] and metrics.value(DEAD) == 0


def test_stopping_between_attempts_leaves_a_poison_message_unacknowledged() -> None:
    stopping = threading.Event()
    processor, sink = Processor(stop_after=1, stopping=stopping), Sink()
    assert handler(processor, sink, Metrics(), stopping=stopping).handle(TOPIC, b"poison") is False
    assert len(processor.calls) == 1 and sink.letters == []


def test_a_dead_letter_is_stored_once_the_database_answers_again() -> None:
    processor, metrics = Processor(), Metrics()
    sink = Sink(failures=[_db_error(OperationalError, "database is locked")])
    assert handler(processor, sink, metrics).handle(TOPIC, b"poison") is True
    assert len(sink.letters) == 1 and metrics.value(RETRIES) == 1 and metrics.value(DEAD) == 1


def test_a_dead_letter_that_cannot_be_stored_leaves_the_message_unacknowledged(caplog) -> None:  # type: ignore[no-untyped-def]
    sink, metrics = Sink(failures=[ProgrammingError("INSERT ...", {}, Exception("no such table"))]), Metrics()
    assert handler(Processor(), sink, metrics).handle(TOPIC, b"poison") is False
    assert metrics.value(DEAD) == 0
    assert any("left unacknowledged" in r.getMessage() for r in caplog.records)


def test_the_first_dead_letter_of_each_error_type_is_logged_the_rest_counted(caplog) -> None:  # type: ignore[no-untyped-def]
    caplog.set_level(logging.DEBUG, logger="central.ingest.handler")
    metrics = Metrics()
    handle = handler(Processor(), Sink(), metrics).handle
    for i in range(5):
        handle(TOPIC, b"poison-%d" % i)
    gave_up = [r for r in caplog.records if r.getMessage().startswith("gave up")]
    assert [r.levelno for r in gave_up] == [logging.ERROR] + [logging.DEBUG] * 4
    assert gave_up[0].exc_info is not None
    assert metrics.value(DEAD) == 5


@pytest.mark.parametrize(
    ("error", "kind"),
    [
        (_db_error(OperationalError, "server closed the connection unexpectedly"), FailureKind.TRANSIENT),
        (_db_error(OperationalError, "canceling statement due to lock timeout"), FailureKind.TRANSIENT),
        (_db_error(OperationalError, "could not serialize access due to concurrent update"), FailureKind.TRANSIENT),
        (_db_error(OperationalError, "database is locked"), FailureKind.TRANSIENT),
        (PoolTimeoutError("QueuePool limit reached"), FailureKind.TRANSIENT),
        (DBAPIError("SELECT 1", {}, Exception("gone"), connection_invalidated=True), FailureKind.TRANSIENT),
        (_db_error(DataError, "value out of range"), FailureKind.PERMANENT),
        (_db_error(IntegrityError, "violates foreign key constraint"), FailureKind.FAILED),
        (RuntimeError("a bug"), FailureKind.FAILED),
    ],
)
def test_failures_are_classified(error: Exception, kind: FailureKind) -> None:
    assert classify(error) is kind
