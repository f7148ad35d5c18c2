"""One message through step one, storing it: stored, retried, or given up on (ingest layer, no MQTT).

The MQTT consumer calls `MessageHandler.handle(topic, payload)` for each message and
acknowledges the message only when it returns True: the message is stored in the inbox
(committed; `central.ingest.processor` applies it afterwards), was stored before, broke
the contract, or could not be stored and went to `dead_letters`. Failures are of three
kinds (the inbox processor classifies its own failures the same way, with `classify`):

- transient (the database is unreachable, locked, or asks for the transaction again):
  retried with backoff for as long as it takes, and left unacknowledged if central stops
  first, so the broker redelivers the message;
- permanent (the database rejects the data itself): given up on at once;
- anything else (a bug, an unexpected constraint violation): retried a few times, then
  given up on.

A message given up on is stored as a dead letter in its own transaction, counted, and
acknowledged. Left unacknowledged it would hold one of the broker's in-flight slots for
good; once they are all taken the broker sends central nothing more.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from enum import StrEnum
from typing import Protocol

from sqlalchemy.exc import DataError, DBAPIError, DisconnectionError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError

from central.clock import Clock
from central.ingest.dead_letters import PoisonMessage
from central.metrics import Metrics

log = logging.getLogger(__name__)


class MessageStore(Protocol):
    def store(self, topic: str, payload: bytes) -> object:
        """Store the message durably (committed when this returns); raise when it could not."""
        ...


class DeadLetterSink(Protocol):
    def dead_letter(self, message: PoisonMessage) -> None:
        """Store the message durably (committed when this returns); raise when it could not."""
        ...


class FailureKind(StrEnum):
    TRANSIENT = "transient"
    PERMANENT = "permanent"
    FAILED = "failed"


def classify(exc: BaseException) -> FailureKind:
    """How a processing error is handled (see the module docstring)."""
    if isinstance(exc, OperationalError | PoolTimeoutError | DisconnectionError):
        return FailureKind.TRANSIENT  # includes lock timeouts, deadlocks and serialization failures
    if isinstance(exc, DBAPIError) and exc.connection_invalidated:
        return FailureKind.TRANSIENT
    if isinstance(exc, DataError):
        return FailureKind.PERMANENT  # e.g. a value PostgreSQL cannot store: no retry will change it
    return FailureKind.FAILED


def describe(exc: BaseException) -> str:
    return f"{type(exc).__module__}.{type(exc).__qualname__}: {exc}"


class MessageHandler:
    def __init__(
        self, *, store: MessageStore, dead_letters: DeadLetterSink, metrics: Metrics, clock: Clock,
        stopping: threading.Event, max_attempts: int = 3, retry_delay_s: float = 0.1, max_backoff_s: float = 5.0,
    ) -> None:  # fmt: skip
        if max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        self._store = store
        self._dead_letters = dead_letters
        self._metrics = metrics
        self._clock = clock
        self._stopping = stopping
        self._max_attempts = max_attempts
        self._retry_delay_s = retry_delay_s
        self._max_backoff_s = max_backoff_s
        self._db_failing = False
        self._logged_errors: set[str] = set()  # bounded by the number of exception types

    def handle(self, topic: str, payload: bytes) -> bool:
        """Store one message; True when it may be acknowledged (stored, or stored as a dead letter)."""
        attempts = 0
        first_failed_at = None
        while True:
            try:
                return self._until_database_answers(lambda: self._store.store(topic, payload))
            except Exception as exc:  # noqa: BLE001 - classified, retried or dead-lettered; never swallowed
                now = self._clock.now()
                attempts += 1
                first_failed_at = first_failed_at or now
                self._metrics.inc("storeguard_central_messages_failed_total")
                if classify(exc) is FailureKind.FAILED and attempts < self._max_attempts:
                    log.debug("storing a message on %s failed (attempt %d of %d): %s",
                              topic, attempts, self._max_attempts, describe(exc))
                    if self._stopping.wait(self._retry_delay_s):
                        return False
                    continue
                poison = PoisonMessage(topic=topic, payload=payload, error=describe(exc), attempts=attempts,
                                       first_failed_at=first_failed_at, last_failed_at=now)
                return self._give_up(poison, exc)

    def _give_up(self, poison: PoisonMessage, exc: Exception) -> bool:
        try:
            if not self._until_database_answers(lambda: self._dead_letters.dead_letter(poison)):
                return False
        except Exception:  # noqa: BLE001 - nowhere safe to put it: leave it to the broker
            log.exception("could not store a message on %s as a dead letter; left unacknowledged", poison.topic)
            return False
        self._metrics.inc("storeguard_central_messages_dead_lettered_total")
        kind = type(exc).__qualname__
        first = kind not in self._logged_errors
        self._logged_errors.add(kind)
        # the first of each error type with its traceback; the rest are the counter and the table
        log.log(logging.ERROR if first else logging.DEBUG,
                "gave up on a message on %s after %d attempt(s), stored it in dead_letters and acknowledged it: %s",
                poison.topic, poison.attempts, poison.error, exc_info=exc if first else None)
        return True

    def _until_database_answers(self, call: Callable[[], object]) -> bool:
        """Run `call`, retrying transient errors with backoff; False if central stops first."""
        delay = self._retry_delay_s
        while True:
            try:
                call()
            except Exception as exc:  # noqa: BLE001 - anything not transient goes to the caller
                if classify(exc) is not FailureKind.TRANSIENT:
                    raise
                self._metrics.inc("storeguard_central_db_retries_total")
                log.log(logging.DEBUG if self._db_failing else logging.ERROR,
                        "database unavailable, retrying: %s", exc)
                self._db_failing = True
                if self._stopping.wait(delay):
                    return False
                delay = min(delay * 2, self._max_backoff_s)
                continue
            if self._db_failing:
                log.info("database available again")
                self._db_failing = False
            return True
