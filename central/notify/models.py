"""Notifications waiting for, or done with, delivery (notify domain: ORM model and typed values).

One row per notification and channel, written in the transaction of the change it reports
(so a rolled-back change notifies nobody) and delivered afterwards by the notify loop, each
channel retried on its own. Failed rows are kept for inspection; the partial index lets every
worker find the due pending rows without reading the delivered ones.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import ForeignKey, Index, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column

from central.db import Base, StrEnumType

PENDING_WHERE = "state = 'pending'"


class Kind(StrEnum):
    TICKET_STATUS = "ticket.status"
    TICKET_SLA_WARNING = "ticket.sla_warning"
    TICKET_ESCALATED = "ticket.escalated"


class State(StrEnum):
    PENDING = "pending"
    DELIVERED = "delivered"
    FAILED = "failed"  # gave up after the last retry; kept, counted, logged


class Notification(Base):
    __tablename__ = "notifications"
    __table_args__ = (
        Index("ix_notifications_due", "next_attempt_at", sqlite_where=text(PENDING_WHERE),
              postgresql_where=text(PENDING_WHERE)),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    channel: Mapped[str] = mapped_column(String(32))  # "log", "webhook"
    kind: Mapped[str] = mapped_column(String(64))  # a Kind value (free text: other domains may add kinds)
    ticket_id: Mapped[int | None] = mapped_column(ForeignKey("tickets.id", ondelete="SET NULL"), index=True)
    store_id: Mapped[str | None] = mapped_column(String(63))
    recipients: Mapped[list[str]]  # usernames
    payload: Mapped[dict[str, Any]]
    created_at: Mapped[datetime]
    state: Mapped[State] = mapped_column(StrEnumType(State, 16))
    attempts: Mapped[int] = mapped_column(default=0)  # delivery attempts that failed so far
    next_attempt_at: Mapped[datetime]  # due from then; pushed forward while a worker delivers it (lease)
    last_error: Mapped[str | None] = mapped_column(Text)
    delivered_at: Mapped[datetime | None]


@dataclass(frozen=True)
class Delivery:
    """A claimed notification as a channel sees it: a detached, read-only copy of its row."""

    id: int
    channel: str
    kind: str
    ticket_id: int | None
    store_id: str | None
    recipients: tuple[str, ...]
    payload: dict[str, Any]
    created_at: datetime
    attempts: int

    @classmethod
    def of(cls, row: Notification) -> Delivery:
        return cls(id=row.id, channel=row.channel, kind=row.kind, ticket_id=row.ticket_id, store_id=row.store_id,
                   recipients=tuple(row.recipients or ()), payload=dict(row.payload or {}),
                   created_at=row.created_at, attempts=row.attempts)
