"""Scheduling, cancelling and firing timers (timers domain service).

`schedule`/`cancel`/`pending_for` never commit: they run in the caller's transaction, so a
deadline is set exactly when the change that implies it commits. `run_pass` owns its
transactions: it claims due timers in batches (`FOR UPDATE SKIP LOCKED` on PostgreSQL, so
several central workers split the due timers and never fire one twice; SQLite has one
writer at a time anyway), runs each handler in a savepoint, deletes what fired and commits
per batch.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Table, delete, func, select
from sqlalchemy.orm import Session

from central import deferred
from central.db import Database, upsert
from central.tickets.models import Ticket  # claims borrow the ticket's row lock (see claim_due)
from central.timers.models import Timer

log = logging.getLogger(__name__)

Handler = Callable[[Session, Timer, datetime], None]
"""Runs a due timer inside the claiming transaction (a savepoint); raise to retry it later."""

RETRY_DELAYS_S = (5.0, 30.0, 120.0, 600.0)  # after the 1st, 2nd, ... failure of a handler


class UnknownTimerKind(LookupError):
    pass


class TimerRegistry:
    """Handlers by timer kind; built once by the composition root."""

    def __init__(self) -> None:
        self._handlers: dict[str, Handler] = {}

    def register(self, kind: str, handler: Handler) -> None:
        if kind in self._handlers:
            raise ValueError(f"a handler for timer kind {kind!r} is already registered")
        self._handlers[kind] = handler

    def handler(self, kind: str) -> Handler:
        try:
            return self._handlers[kind]
        except KeyError:
            raise UnknownTimerKind(f"no handler is registered for timer kind {kind!r}") from None

    @property
    def kinds(self) -> frozenset[str]:
        return frozenset(self._handlers)


# --- in the caller's transaction ----------------------------------------------------------------
def schedule(
    *, session: Session, key: str, kind: str, due_at: datetime, now: datetime, ticket_id: int | None = None,
    data: Mapping[str, Any] | None = None,
) -> None:  # fmt: skip
    """Set the deadline of `key` (insert, or move an existing one and un-park it)."""
    values = {"key": key, "kind": kind, "ticket_id": ticket_id, "due_at": due_at, "data": dict(data or {}),
              "created_at": now, "attempts": 0, "last_error": None, "failed_at": None}
    stmt = upsert(session, Timer.__table__).values(**values)
    session.execute(stmt.on_conflict_do_update(
        index_elements=["key"],
        set_={name: stmt.excluded[name] for name in ("kind", "ticket_id", "due_at", "data", "attempts",
                                                     "last_error", "failed_at")},
    ))


def cancel(
    *, session: Session, keys: Collection[str] = (), ticket_id: int | None = None, kinds: Collection[str] = (),
) -> int:  # fmt: skip
    """Delete pending timers by key, or by ticket (optionally only some kinds); the count deleted."""
    if not keys and ticket_id is None:
        raise ValueError("cancel needs keys or a ticket_id")
    stmt = delete(Timer)
    if keys:
        stmt = stmt.where(Timer.key.in_(list(keys)))
    if ticket_id is not None:
        stmt = stmt.where(Timer.ticket_id == ticket_id)
    if kinds:
        stmt = stmt.where(Timer.kind.in_(list(kinds)))
    result = session.execute(stmt.execution_options(synchronize_session=False))
    return int(getattr(result, "rowcount", 0) or 0)


def pending_for(*, session: Session, ticket_id: int) -> list[Timer]:
    return list(session.scalars(select(Timer).where(Timer.ticket_id == ticket_id).order_by(Timer.due_at, Timer.id)))


def next_due(*, session: Session) -> datetime | None:
    """The earliest pending deadline (parked timers excluded)."""
    return session.scalar(select(func.min(Timer.due_at)).where(Timer.failed_at.is_(None)))


def count_pending(*, session: Session) -> int:
    return int(session.scalar(select(func.count()).select_from(Timer).where(Timer.failed_at.is_(None))) or 0)


def claim_due(*, session: Session, now: datetime, limit: int) -> list[Timer]:
    """Lock up to `limit` due timers, oldest deadline first; rows another worker holds are skipped.

    On PostgreSQL a ticket's timers are claimed together with the ticket row itself (`FOR
    UPDATE OF timers, tickets SKIP LOCKED`): a handler then owns its ticket and may re-plan
    that ticket's other timers without waiting on a worker that holds some of them, and a
    ticket locked by ingest or the API is simply left for the next pass. Everyone else locks
    the ticket before its timers, and the claim never waits, so no lock cycle can form.
    """
    due = (Timer.failed_at.is_(None), Timer.due_at <= now)
    order = (Timer.due_at, Timer.id)
    if session.get_bind().dialect.name != "postgresql":
        return list(session.scalars(select(Timer).where(*due).order_by(*order).limit(limit)))
    with_ticket = list(session.scalars(
        select(Timer).join(Ticket, Ticket.id == Timer.ticket_id).where(*due).order_by(*order).limit(limit)
        .with_for_update(skip_locked=True, of=(Timer, Ticket))
    ))
    without_ticket = list(session.scalars(
        select(Timer).where(*due, Timer.ticket_id.is_(None)).order_by(*order).limit(limit)
        .with_for_update(skip_locked=True)
    ))
    return sorted(with_ticket + without_ticket, key=lambda t: (t.due_at, t.id))[:limit]


# --- firing -------------------------------------------------------------------------------------
@dataclass
class PassResult:
    fired: dict[str, int] = field(default_factory=dict)  # by kind
    retried: int = 0
    parked: int = 0
    skipped: int = 0  # claimed, but cancelled or moved later before its turn (by a handler earlier in the batch)

    @property
    def fired_total(self) -> int:
        return sum(self.fired.values())


def _snapshot(row: Any) -> Timer:
    """A detached copy of a fired timer's row, for the handler to read."""
    return Timer(id=row.id, key=row.key, kind=row.kind, ticket_id=row.ticket_id, due_at=row.due_at,
                 data=dict(row.data or {}), created_at=row.created_at, attempts=row.attempts,
                 last_error=row.last_error, failed_at=row.failed_at)


def _fire(session: Session, timer_id: int, kind: str, registry: TimerRegistry, now: datetime) -> bool:
    """Delete the timer and run its handler in one savepoint; False if it was cancelled or moved meanwhile.

    The delete re-checks the deadline: a handler earlier in the same batch (or another
    worker, before we locked it) may have cancelled this timer or moved it later.
    """
    with deferred.unit(session):  # the handler's deferred work (a ticket's status) runs in it
        handler = registry.handler(kind)
        table = Timer.__table__
        assert isinstance(table, Table)
        row = session.execute(
            delete(table).where(table.c.id == timer_id, table.c.due_at <= now, table.c.failed_at.is_(None))
            .returning(*table.c)
        ).first()
        if row is None:
            return False
        handler(session, _snapshot(row), now)  # may schedule the same key again: the row is gone
    return True


def _failed(session: Session, timer_id: int, exc: Exception, now: datetime, max_attempts: int,
            result: PassResult) -> None:
    timer = session.get(Timer, timer_id, populate_existing=True)
    if timer is None:
        return  # cancelled by someone else meanwhile: nothing left to retry
    timer.attempts += 1
    timer.last_error = f"{type(exc).__qualname__}: {exc}"[:2000]
    if timer.attempts >= max_attempts:
        timer.failed_at = now
        result.parked += 1
        log.error("timer %s (%s) failed %d times and is parked; last error: %s",
                  timer.key, timer.kind, timer.attempts, timer.last_error)
    else:
        delay = RETRY_DELAYS_S[min(timer.attempts, len(RETRY_DELAYS_S)) - 1]
        timer.due_at = now + timedelta(seconds=delay)
        result.retried += 1
        log.warning("timer %s (%s) failed (attempt %d of %d), retrying in %.0f s: %s",
                    timer.key, timer.kind, timer.attempts, max_attempts, delay, timer.last_error)
    session.flush()


FIRST_CLAIM = 10  # timers claimed by a pass's first batch, before it knows what one costs


def run_pass(
    *, database: Database, registry: TimerRegistry, now: datetime, batch_size: int = 200, max_attempts: int = 5,
    max_batches: int = 50, budget_s: float = 0.2,
) -> PassResult:  # fmt: skip
    """Fire every timer due at `now` (up to `max_batches` batches); one transaction per batch.

    A batch holds its timers' tickets locked until it commits, and ingest and the API wait on
    a ticket a timer holds: so after the first batch (`FIRST_CLAIM` timers) each claims what
    fits in `budget_s` at this pass's time per timer, never more than `batch_size`. (A fixed
    200 held 200 tickets for ~12 s when thousands of recoveries fell due together, and ingest
    all but stopped meanwhile.)"""
    result = PassResult()
    per_timer: float | None = None
    for _ in range(max_batches):
        size = min(batch_size, FIRST_CLAIM if per_timer is None else max(1, int(budget_s / per_timer)))
        started = time.monotonic()
        with database.session() as session, session.begin():
            due = [(timer.id, timer.kind) for timer in claim_due(session=session, now=now, limit=size)]
            for timer_id, kind in due:
                try:
                    fired = _fire(session, timer_id, kind, registry, now)
                except Exception as exc:  # noqa: BLE001 - counted, retried, parked; never lost
                    _failed(session, timer_id, exc, now, max_attempts, result)
                else:
                    if fired:
                        result.fired[kind] = result.fired.get(kind, 0) + 1
                    else:
                        result.skipped += 1
        if len(due) < size:
            break
        took = (time.monotonic() - started) / len(due)
        per_timer = took if per_timer is None else 0.5 * per_timer + 0.5 * took
    return result
