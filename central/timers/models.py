"""Pending timers (timers domain: ORM model).

One row per pending deadline, unique by `key` (e.g. ``sla:42:response:warn50``): scheduling
the same key again moves the deadline instead of adding a second one. A row is deleted in
the transaction that fires it, so a timer fires at most once per schedule; a worker that
crashes mid-handler rolls the deletion back and the timer stays due. A handler that keeps
failing is parked (`failed_at`) after a few attempts instead of blocking the queue.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column

from central.db import Base

PENDING_WHERE = "failed_at IS NULL"


class Timer(Base):
    __tablename__ = "timers"
    __table_args__ = (
        Index("ix_timers_due", "due_at", sqlite_where=text(PENDING_WHERE), postgresql_where=text(PENDING_WHERE)),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    key: Mapped[str] = mapped_column(String(200), unique=True)
    kind: Mapped[str] = mapped_column(String(40))  # selects the handler
    ticket_id: Mapped[int | None] = mapped_column(ForeignKey("tickets.id", ondelete="CASCADE"), index=True)
    due_at: Mapped[datetime]
    data: Mapped[dict[str, Any]]
    created_at: Mapped[datetime]
    attempts: Mapped[int] = mapped_column(default=0)  # failed runs of the handler so far
    last_error: Mapped[str | None] = mapped_column(Text)
    failed_at: Mapped[datetime | None]  # parked: the handler failed `max_attempts` times
