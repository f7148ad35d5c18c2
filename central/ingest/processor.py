"""Store first, process second (ingest layer, no MQTT here).

`Ingestor.store(topic, payload)` is step one, what the MQTT consumer calls for each message:
parse against contract v1 (a rejection is counted, nothing stored), then write the message
to the inbox (`central.ingest.inbox`) and commit. Only then may the message be
acknowledged; a redelivery of a stored `message_id` writes nothing and is acknowledged too.

`Ingestor.process_next()` is step two, what the inbox worker (`central.ingest.worker`) calls:
claim one pending message and, in one transaction, apply it and mark it processed. A
failure is classified like the consumer's (`central.ingest.handler.classify`):

- transient (database unreachable, locked, deadlock): the transaction rolls back, the row
  stays pending as it was, the error goes to the caller, which backs off;
- permanent (the database rejects the data itself): the message is copied to `dead_letters`
  and its row marked, at once;
- anything else: the attempt is counted on the row (`attempts`, `last_error`) and the
  message retried after a backoff; after `max_attempts` it is dead-lettered.

The apply runs in a savepoint, so a failed attempt rolls back the apply alone and the row's
failure record commits. `Ingestor.process(topic, payload)` does both steps at once, for
tests and tools that want the result of one message.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from sqlalchemy.orm import Session

from central import deferred
from central.clock import Clock
from central.db import Database
from central.ingest import dead_letters, inbox
from central.ingest.dead_letters import PoisonMessage
from central.ingest.flows import Applied, Outcome, apply_message
from central.ingest.handler import FailureKind, classify, describe
from central.ingest.models import InboundMessage, InboxOutcome
from central.metrics import Metrics
from central.tickets.policy import Lifecycle
from device_profiles import ProfileRegistry
from protocols.mqtt.messages import (
    ConfigAck,
    ContractError,
    FaultEvent,
    Message,
    StoreHealth,
    TelemetryBatch,
    parse_message,
)

log = logging.getLogger(__name__)
CONSUMED = (FaultEvent, TelemetryBatch, StoreHealth, ConfigAck)


class Stored(StrEnum):
    """What step one did with a message."""

    STORED = "stored"  # written, pending: acknowledge it, then apply it
    DUPLICATE = "duplicate"  # this message_id was stored before: nothing written, acknowledge it
    REJECTED = "rejected"  # broke the contract: counted, nothing written, acknowledge it


@dataclass(frozen=True, slots=True)
class StoreResult:
    stored: Stored
    kind: str = ""
    row_id: int | None = None  # the inbox row, when stored
    reason: str | None = None  # the ContractError reason of a rejection


@dataclass(frozen=True, slots=True)
class Result:
    outcome: Outcome
    kind: str = ""
    reason: str | None = None  # the ContractError reason of a rejection
    created_ticket_id: int | None = None


@dataclass(frozen=True, slots=True)
class Processed:
    """What step two did with one inbox row."""

    row_id: int
    result: Result
    error: Exception | None = None  # this attempt failed (the row records it)
    dead_lettered: bool = False  # ... and was the last one


class Ingestor:
    def __init__(self, *, database: Database, profiles: ProfileRegistry, metrics: Metrics, clock: Clock,
                 haccp_interval_s: int = 900, max_attempts: int = 3, retry_delay_s: float = 1.0,
                 max_backoff_s: float = 60.0, lifecycle: Lifecycle = Lifecycle()) -> None:
        if max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        self._database = database
        self._haccp_interval_s = haccp_interval_s  # settings.haccp_interval_s
        self._lifecycle = lifecycle  # settings.recovery_grace_s, reopen_window_s
        self._profiles = profiles
        self._metrics = metrics
        self._clock = clock
        self._max_attempts = max_attempts  # settings.ingest_max_attempts
        self._retry_delay_s = retry_delay_s  # settings.ingest_retry_delay_s: the first backoff, doubling
        self._max_backoff_s = max_backoff_s
        self._logged: set[str] = set()  # rejection reasons and error types logged once; bounded by their kinds
        self._lock = threading.Lock()
        self._seconds_per_message = 0.02  # a running mean of the time to apply one (sizes batches)
        self._backlog_claim = 0  # the next claim's size while a backlog lasts (0: none seen)

    # --- step one: store ---
    def store(self, topic: str, payload: bytes) -> StoreResult:
        """Validate and store one message; committed when this returns. Database errors propagate
        (the caller retries and must not acknowledge)."""
        try:
            message = parse_message(topic, payload)
            if not isinstance(message, CONSUMED):
                raise ContractError("unexpected_kind", f"central does not consume {type(message).__name__}")
        except ContractError as exc:
            self._rejected(topic, exc)
            return StoreResult(Stored.REJECTED, reason=exc.reason)
        kind = _kind(message)
        with self._database.session() as session, session.begin():
            row_id = inbox.store(session=session, topic=topic, payload=payload, message_id=message.message_id,
                                 store_id=message.store_id, kind=kind, seq=getattr(message, "seq", None),
                                 now=self._clock.now())
        if row_id is None:
            self._metrics.inc("storeguard_central_messages_duplicate_total", kind=kind)
            return StoreResult(Stored.DUPLICATE, kind)
        return StoreResult(Stored.STORED, kind, row_id=row_id)

    # --- step two: apply ---
    def process_next(self, row_id: int | None = None) -> Processed | None:
        """Apply the oldest due pending message (or the row `row_id`); None when there is none.

        Raises only transient database errors; nothing of the attempt is then committed."""
        done = self._apply(row_id=row_id, limit=1)
        return done[0] if done else None

    def process_batch(self, limit: int, budget_s: float = 0.1) -> list[Processed]:
        """Apply up to `limit` due pending messages in one transaction (what the inbox worker
        calls): one commit, one claim and the per-transaction caches (rules, policies,
        templates) shared by the batch. Each message runs in a savepoint of its own, so one
        that fails is recorded and the others commit; a transient error rolls all back and
        leaves them pending. The oldest due rows are claimed, and applied in (store, arrival)
        order: the store rows are locked in one order by every worker, so two workers' batches
        cannot deadlock on them, and each store's messages keep their order.

        The claim is sized to what fits in `budget_s` at the recent time per message (at least
        one), since the stores hear of their tickets only when the batch commits: batching
        adds about `budget_s` to that at most. Under a backlog (the last claim came back
        full) the claim doubles, up to `limit`: the messages waiting would wait anyway, and
        a bigger batch shares its claim, commit and caches, so the backlog drains sooner.
        Empty: nothing is due."""
        fits = int(budget_s / self._seconds_per_message) if self._seconds_per_message > 0 else limit
        size = max(1, min(limit, max(fits, self._backlog_claim)))
        done = self._apply(row_id=None, limit=size)
        self._backlog_claim = min(limit, 2 * size) if len(done) >= size else 0
        return done

    def _apply(self, *, row_id: int | None, limit: int) -> list[Processed]:
        now = self._clock.now()
        started = time.monotonic()
        done: list[tuple[Processed, Applied | None]] = []
        with self._database.session() as session, session.begin():
            if row_id is not None:
                row = inbox.claim(session=session, row_id=row_id)
                rows = [row] if row is not None else []
            else:
                rows = sorted(inbox.claim_many(session=session, now=now, limit=limit), key=lambda r: (r.store_id, r.id))
            for row in rows:
                done.append(self._apply_row(session, row, now))
        if done:  # the recent cost of a message, commit included: sizes the next claim
            took = (time.monotonic() - started) / len(done)
            self._seconds_per_message = 0.8 * self._seconds_per_message + 0.2 * took
        # committed: only now does it count
        for processed, applied in done:
            if applied is not None:
                self._count_applied(applied)
            else:
                self._count_failure(processed, row_kind=processed.result.kind)
        return [processed for processed, _ in done]

    def _apply_row(self, session: Session, row: InboundMessage, now: datetime) -> tuple[Processed, Applied | None]:
        try:
            with deferred.unit(session):
                applied = apply_message(session=session, message=_parse_stored(row), now=now,
                                        profiles=self._profiles, haccp_interval_s=self._haccp_interval_s,
                                        lifecycle=self._lifecycle)
        except Exception as exc:  # noqa: BLE001 - classified: transient re-raised, the rest recorded
            if classify(exc) is FailureKind.TRANSIENT:
                raise
            return self._failed(session, row, exc, now), None
        inbox.mark_processed(session=session, row=row, outcome=_outcome(applied), now=now)
        return Processed(row.id, Result(Outcome.ACCEPTED, applied.kind,
                                        created_ticket_id=applied.created_ticket_id)), applied

    def process(self, topic: str, payload: bytes) -> Result:
        """Both steps for one message. A failed attempt is recorded on its row and re-raised."""
        stored = self.store(topic, payload)
        if stored.stored is Stored.REJECTED:
            return Result(Outcome.REJECTED, reason=stored.reason)
        if stored.stored is Stored.DUPLICATE or stored.row_id is None:
            return Result(Outcome.DUPLICATE, stored.kind)
        processed = self.process_next(row_id=stored.row_id)
        if processed is None:  # another worker applied it between the two steps
            return Result(Outcome.ACCEPTED, stored.kind)
        if processed.error is not None:
            raise processed.error
        return processed.result

    def pending(self) -> int:
        """Stored messages not applied yet (all workers')."""
        with self._database.session() as session:
            return inbox.count_pending(session=session)

    def dead_letter(self, message: PoisonMessage) -> None:
        """Store a message step one gave up on, in a transaction of its own."""
        with self._database.session() as session, session.begin():
            dead_letters.record(session=session, message=message)

    # --- internals ---
    def _failed(self, session: Session, row: InboundMessage, exc: Exception, now: datetime) -> Processed:
        attempts = row.attempts + 1
        give_up = classify(exc) is FailureKind.PERMANENT or attempts >= self._max_attempts
        retry_at = None if give_up else now + timedelta(
            seconds=min(self._retry_delay_s * 2 ** (attempts - 1), self._max_backoff_s))
        error = describe(exc)
        inbox.record_failure(session=session, row=row, error=error, now=now, retry_at=retry_at)
        if give_up:
            assert row.topic is not None and row.payload is not None  # pending rows always have them
            dead_letters.record(session=session, message=PoisonMessage(
                topic=row.topic, payload=row.payload, error=error, attempts=row.attempts,
                first_failed_at=row.first_failed_at or now, last_failed_at=now))
        return Processed(row.id, Result(Outcome.ACCEPTED, row.kind), error=exc, dead_lettered=give_up)

    def _count_applied(self, applied: Applied) -> None:
        self._metrics.inc("storeguard_central_messages_accepted_total", kind=applied.kind)
        if not applied.in_order:
            self._metrics.inc("storeguard_central_fault_events_out_of_order_total")
        if applied.created_ticket_id is not None and applied.ticket_class is not None:
            self._metrics.inc("storeguard_central_tickets_created_total", ticket_class=applied.ticket_class.value)

    def _count_failure(self, processed: Processed, *, row_kind: str) -> None:
        self._metrics.inc("storeguard_central_messages_failed_total")
        exc = processed.error
        assert exc is not None
        if not processed.dead_lettered:
            log.debug("applying inbound message %d (%s) failed, will retry: %s", processed.row_id, row_kind,
                      describe(exc))
            return
        self._metrics.inc("storeguard_central_messages_dead_lettered_total")
        first = self._first_time(f"error:{type(exc).__qualname__}")
        # the first of each error type with its traceback; the rest are the counter and the table
        log.log(logging.ERROR if first else logging.DEBUG,
                "gave up on inbound message %d (%s), moved it to dead_letters: %s", processed.row_id, row_kind,
                describe(exc), exc_info=exc if first else None)

    def _rejected(self, topic: str, exc: ContractError) -> None:
        self._metrics.inc("storeguard_central_messages_rejected_total", reason=exc.reason)
        # log the first of each reason; the rest are a metric, not a log flood
        log.log(logging.WARNING if self._first_time(f"reason:{exc.reason}") else logging.DEBUG,
                "rejected a message on %s: %s", topic, exc)

    def _first_time(self, key: str) -> bool:
        with self._lock:
            first = key not in self._logged
            self._logged.add(key)
        return first


def _kind(message: Message) -> str:
    return str(getattr(message, "kind", "unknown"))


def _parse_stored(row: InboundMessage) -> Message:
    if row.topic is None or row.payload is None:
        raise ValueError(f"inbound message {row.id} is pending without its topic or payload")
    return parse_message(row.topic, row.payload)


def _outcome(applied: Applied) -> InboxOutcome:
    if applied.created_ticket_id is not None:
        return InboxOutcome.TICKET_CREATED
    return InboxOutcome.APPLIED if applied.in_order else InboxOutcome.OUT_OF_ORDER
