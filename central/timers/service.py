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
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from central.db import Database, upsert
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
    """Lock up to `limit` due timers, oldest deadline first; rows another worker holds are skipped."""
    query = (select(Timer).where(Timer.failed_at.is_(None), Timer.due_at <= now)
             .order_by(Timer.due_at, Timer.id).limit(limit))
    if session.get_bind().dialect.name == "postgresql":
        query = query.with_for_update(skip_locked=True)
    return list(session.scalars(query))


# --- firing -------------------------------------------------------------------------------------
@dataclass
class PassResult:
    fired: dict[str, int] = field(default_factory=dict)  # by kind
    retried: int = 0
    parked: int = 0

    @property
    def fired_total(self) -> int:
        return sum(self.fired.values())


def _fire(session: Session, timer: Timer, registry: TimerRegistry, now: datetime) -> None:
    with session.begin_nested():
        handler = registry.handler(timer.kind)
        session.delete(timer)
        session.flush()  # gone before the handler runs, so it may schedule the same key again
        handler(session, timer, now)


def _failed(session: Session, timer: Timer, exc: Exception, now: datetime, max_attempts: int,
            result: PassResult) -> None:
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


def run_pass(
    *, database: Database, registry: TimerRegistry, now: datetime, batch_size: int = 200, max_attempts: int = 5,
    max_batches: int = 50,
) -> PassResult:  # fmt: skip
    """Fire every timer due at `now` (up to `max_batches` batches); one transaction per batch."""
    result = PassResult()
    for _ in range(max_batches):
        with database.session() as session, session.begin():
            due = claim_due(session=session, now=now, limit=batch_size)
            for timer in due:
                kind = timer.kind
                try:
                    _fire(session, timer, registry, now)
                except Exception as exc:  # noqa: BLE001 - counted, retried, parked; never lost
                    _failed(session, timer, exc, now, max_attempts, result)
                else:
                    result.fired[kind] = result.fired.get(kind, 0) + 1
        if len(due) < batch_size:
            break
    return result
