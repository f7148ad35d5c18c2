"""The inbox: MQTT messages stored before they are applied (ingest domain service). Never commits.

Step one (`store`) writes a message as received, pending, keyed by its `message_id`; the
caller commits and only then acknowledges the message to the broker. Step two (`claim_many`
or `claim`, then `mark_processed` or `record_failure`) runs in the transaction that applies it, so a
message is applied and marked in one commit or not at all.

`claim_many` takes the oldest due pending rows with `SELECT ... FOR UPDATE SKIP LOCKED` on
PostgreSQL: several central workers claim different rows, and a worker that dies mid-way
releases its row with its connection. SQLite ignores the locking clause; its transactions
start with BEGIN IMMEDIATE (`central.db`), so one writer at a time claims.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from central.db import upsert
from central.ingest.models import InboundMessage, InboxOutcome, InboxState

MAX_ERROR_CHARS = 4000


def store(*, session: Session, topic: str, payload: bytes, message_id: str, store_id: str, kind: str,
          seq: int | None, now: datetime) -> int | None:
    """Insert the message as pending; its row id, or None when this message_id was stored before."""
    table = InboundMessage.__table__
    stmt = upsert(session, table).values(
        message_id=message_id, store_id=store_id, kind=kind, seq=seq, received_at=now, topic=topic,
        payload=payload, state=InboxState.PENDING.value, attempts=0,
    )
    inserted = session.execute(
        stmt.on_conflict_do_nothing(index_elements=["message_id"]).returning(table.c.id)
    ).first()
    return None if inserted is None else int(inserted[0])


def claim(*, session: Session, row_id: int) -> InboundMessage | None:
    """Lock and return the row `row_id` while it is still pending (its caller stored it and wants
    its result: waited for, not skipped); None once another worker has applied it."""
    query = select(InboundMessage).where(InboundMessage.state == InboxState.PENDING, InboundMessage.id == row_id)
    return session.scalars(query.with_for_update()).first()


def claim_many(*, session: Session, now: datetime, limit: int) -> list[InboundMessage]:
    """Lock and return up to `limit` due pending rows, oldest first, passing over rows other
    workers hold (SKIP LOCKED)."""
    query = (select(InboundMessage)
             .where(InboundMessage.state == InboxState.PENDING,
                    or_(InboundMessage.next_attempt_at.is_(None), InboundMessage.next_attempt_at <= now))
             .order_by(InboundMessage.id).limit(limit).with_for_update(skip_locked=True))
    return list(session.scalars(query))


def mark_processed(*, session: Session, row: InboundMessage, outcome: InboxOutcome, now: datetime) -> None:
    row.state = InboxState.PROCESSED
    row.outcome = outcome
    row.processed_at = now
    row.next_attempt_at = None
    session.flush()


def record_failure(*, session: Session, row: InboundMessage, error: str, now: datetime,
                   retry_at: datetime | None) -> None:
    """Count a failed attempt; `retry_at` None means given up on (the caller dead-letters it)."""
    row.attempts += 1
    row.last_error = error.replace("\x00", "\\x00")[:MAX_ERROR_CHARS]
    row.first_failed_at = row.first_failed_at or now
    if retry_at is None:
        mark_processed(session=session, row=row, outcome=InboxOutcome.DEAD_LETTERED, now=now)
    else:
        row.next_attempt_at = retry_at
        session.flush()


def count_pending(*, session: Session) -> int:
    return session.scalar(select(func.count()).select_from(InboundMessage)
                          .where(InboundMessage.state == InboxState.PENDING)) or 0
