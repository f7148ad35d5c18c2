"""The outbox (outbox domain service): enqueue in the caller's transaction; the publisher drains.

Never commits. `enqueue` flags the session so the publisher is woken right after the commit.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import datetime

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from central.outbox.models import OutboundMessage
from protocols.mqtt.messages import Message


def enqueue(*, session: Session, message: Message, topic: str, now: datetime, ticket_id: int | None = None) -> None:
    session.add(
        OutboundMessage(
            message_id=message.message_id,
            store_id=message.store_id,
            ticket_id=ticket_id,
            topic=topic,
            payload=message.model_dump_json(),
            created_at=now,
        )
    )
    session.info["outbox_written"] = True


def pending(*, session: Session, limit: int, exclude_ids: Collection[int] = ()) -> Sequence[OutboundMessage]:
    """The oldest unsent messages, skipping those already handed to the MQTT client."""
    query = select(OutboundMessage).where(OutboundMessage.sent_at.is_(None)).order_by(OutboundMessage.id)
    if exclude_ids:
        query = query.where(OutboundMessage.id.not_in(list(exclude_ids)))
    return session.scalars(query.limit(limit)).all()


def mark_sent(*, session: Session, ids: Collection[int], now: datetime) -> None:
    if ids:
        session.execute(
            update(OutboundMessage)
            .where(OutboundMessage.id.in_(list(ids)), OutboundMessage.sent_at.is_(None))
            .values(sent_at=now)
        )


def count_pending(*, session: Session) -> int:
    query = select(func.count()).select_from(OutboundMessage).where(OutboundMessage.sent_at.is_(None))
    return session.scalar(query) or 0
