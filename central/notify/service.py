"""Writing, claiming and settling notifications (notify domain service). Never commits.

`enqueue` and `for_ticket_event` run in the caller's transaction (an ingest message, an API
request, a timer handler), so a change that rolls back notifies nobody. They only add rows,
one per enabled channel, and read nothing but the ticket already in the session: cheap
enough for every ticket change.

`claim_due`, `mark_delivered` and `record_failure` are the delivery loop's, each in its own
short transaction. A claim locks due rows (`FOR UPDATE SKIP LOCKED` on PostgreSQL; SQLite
has one writer at a time) and moves their `next_attempt_at` past the delivery (a lease), so
no other worker claims them while this one delivers outside any transaction: no database
lock is held across an HTTP call. A worker that dies mid-delivery leaves its rows to be
claimed again when the lease ends, so delivery is at least once and payloads carry the
notification id for receivers to deduplicate.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import event as sa_event
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from central.db import Database
from central.notify.models import Delivery, Kind, Notification, State
from central.tickets.models import EventType, Ticket, TicketEvent

log = logging.getLogger(__name__)

RETRY_DELAYS_S = (5.0, 30.0, 120.0, 600.0, 3600.0)  # after the 1st, 2nd, ... failed attempt
MAX_ATTEMPTS = len(RETRY_DELAYS_S) + 1  # the attempt after the last delay is the last one
DEFAULT_CHANNELS: tuple[str, ...] = ("log",)  # sessions of a database nobody configured (tools, tests)
CHANNELS_KEY = "notify_channels"  # Session.info: the channels this process writes rows for
WRITTEN_KEY = "notify_written"  # Session.info: this transaction enqueued something (wake the loop on commit)

_KIND_OF_EVENT = {EventType.SLA_WARNING: Kind.TICKET_SLA_WARNING, EventType.ESCALATED: Kind.TICKET_ESCALATED}


# --- composition root ---------------------------------------------------------------------------
def configure(database: Database, *, channels: Sequence[str]) -> None:
    """Make every session of `database` write rows for `channels` (none: notifications are off)."""
    database.sessionmaker.configure(info={CHANNELS_KEY: tuple(channels)})


def on_commit(database: Database, callback: Callable[[], None]) -> None:
    """Run `callback` after each commit of a transaction that enqueued a notification."""

    def after_commit(session: Session) -> None:
        if session.info.pop(WRITTEN_KEY, False):
            callback()

    def after_rollback(session: Session) -> None:
        session.info.pop(WRITTEN_KEY, None)

    sa_event.listen(database.sessionmaker, "after_commit", after_commit)
    sa_event.listen(database.sessionmaker, "after_rollback", after_rollback)


def channels_of(session: Session) -> tuple[str, ...]:
    return tuple(session.info.get(CHANNELS_KEY, DEFAULT_CHANNELS))


# --- in the caller's transaction ----------------------------------------------------------------
def enqueue(
    *, session: Session, kind: str, payload: Mapping[str, Any], recipients: Iterable[str], now: datetime,
    ticket_id: int | None = None, store_id: str | None = None,
) -> int:  # fmt: skip
    """Add one pending notification per enabled channel; the number of rows added."""
    channels = channels_of(session)
    names = list(dict.fromkeys(recipients))
    for channel in channels:
        session.add(Notification(
            channel=channel, kind=str(kind), ticket_id=ticket_id, store_id=store_id, recipients=list(names),
            payload=dict(payload), created_at=now, state=State.PENDING, attempts=0, next_attempt_at=now,
            last_error=None, delivered_at=None,
        ))
    if channels:
        session.info[WRITTEN_KEY] = True
    return len(channels)


def kind_of(event_type: EventType) -> Kind:
    return _KIND_OF_EVENT.get(event_type, Kind.TICKET_STATUS)


def default_recipients(ticket: Ticket) -> list[str]:
    """The people a ticket's change concerns by default: its assignee's user."""
    return [ticket.assignee.user.username] if ticket.assignee is not None else []


def ticket_payload(ticket: Ticket, event: TicketEvent, now: datetime) -> dict[str, Any]:
    """What a receiver needs to act without calling back: the ticket's state and the event."""
    assignee = ticket.assignee
    payload = {
        "ticket": {
            "id": ticket.id, "number": ticket.number, "store_id": ticket.store_id, "device_id": ticket.device_id,
            "fault_code": ticket.fault_code, "title": ticket.title, "status": str(ticket.status),
            "priority": ticket.priority,
            "assignee": assignee.user.username if assignee is not None else None,
            "assignee_name": assignee.display_name if assignee is not None else None,
        },
        "event": {
            "type": str(event.type), "note": event.note or "", "data": event.data or {},
            "at": (event.at or now).isoformat(),
        },
    }
    # event data is JSON already (a JSON column); the round trip only guarantees it, never fails
    result: dict[str, Any] = json.loads(json.dumps(payload, default=str))
    return result


def for_ticket_event(
    *, session: Session, ticket: Ticket, event: TicketEvent, now: datetime, recipients: Iterable[str] | None = None,
) -> int:  # fmt: skip
    """Notify the people concerned by `event` on `ticket`: the assignee, plus `recipients` (escalations).

    Call it after the change, in its transaction. Adds a row per enabled channel and runs no
    query of its own (the assignee is loaded with the ticket); a no-op when notifications are off.
    """
    if not channels_of(session):
        return 0
    if ticket.id is None:
        session.flush()  # a ticket created in this transaction: its id goes into the payload
    names = default_recipients(ticket) + list(recipients or ())
    return enqueue(session=session, kind=kind_of(event.type), payload=ticket_payload(ticket, event, now),
                   recipients=names, now=now, ticket_id=ticket.id, store_id=ticket.store_id)


# --- delivery (the loop's own transactions) -----------------------------------------------------
def claim_due(
    *, session: Session, now: datetime, limit: int, channels: Collection[str], lease_s: float,
) -> list[Delivery]:  # fmt: skip
    """Lock up to `limit` due rows of `channels`, oldest first, and lease them for `lease_s`.

    Rows another worker holds are skipped (PostgreSQL); once this transaction commits, the
    moved `next_attempt_at` keeps every other worker off them until the lease ends.
    """
    if not channels:
        return []
    query = (
        select(Notification)
        .where(Notification.state == State.PENDING, Notification.next_attempt_at <= now,
               Notification.channel.in_(list(channels)))
        .order_by(Notification.next_attempt_at, Notification.id)
        .limit(limit)
    )
    if session.get_bind().dialect.name == "postgresql":
        query = query.with_for_update(skip_locked=True)
    rows = list(session.scalars(query.execution_options(populate_existing=True)))
    until = now + timedelta(seconds=lease_s)
    for row in rows:
        row.next_attempt_at = until
    session.flush()
    return [Delivery.of(row) for row in rows]


def mark_delivered(*, session: Session, notification_ids: Collection[int], now: datetime) -> int:
    """Record deliveries, in one statement; how many rows were still pending (not given up or
    delivered meanwhile)."""
    if not notification_ids:
        return 0
    result = session.execute(
        update(Notification)
        .where(Notification.id.in_(list(notification_ids)), Notification.state == State.PENDING)
        .values(state=State.DELIVERED, delivered_at=now)
        .execution_options(synchronize_session=False)
    )
    return int(getattr(result, "rowcount", 0) or 0)


@dataclass(frozen=True)
class Failure:
    """What became of a failed attempt: retried at `retry_at`, or given up (`state` failed)."""

    state: State
    attempts: int
    retry_at: datetime | None


def record_failure(*, session: Session, notification_id: int, error: str, now: datetime) -> Failure | None:
    """Count a failed attempt and schedule the next (5 s, 30 s, 2 min, 10 min, 1 h), or give up.

    None if the row is gone or no longer pending.
    """
    row = session.get(Notification, notification_id, populate_existing=True)
    if row is None or row.state is not State.PENDING:
        return None
    row.attempts += 1
    row.last_error = error[:2000]
    if row.attempts >= MAX_ATTEMPTS:
        row.state = State.FAILED
        retry_at = None
    else:
        retry_at = now + timedelta(seconds=RETRY_DELAYS_S[row.attempts - 1])
        row.next_attempt_at = retry_at
    session.flush()
    return Failure(state=row.state, attempts=row.attempts, retry_at=retry_at)


def count_pending(*, session: Session) -> int:
    query = select(func.count()).select_from(Notification).where(Notification.state == State.PENDING)
    return int(session.scalar(query) or 0)


def count_failed(*, session: Session) -> int:
    query = select(func.count()).select_from(Notification).where(Notification.state == State.FAILED)
    return int(session.scalar(query) or 0)
