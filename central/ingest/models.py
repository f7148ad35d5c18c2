"""Ingest ledgers (ingest domain: ORM models).

`inbound_messages` is the inbox and idempotency ledger (key `message_id`): every accepted
MQTT message is stored there, pending, before it is acknowledged, and marked processed in
the transaction that applies it. `dead_letters` keeps the raw messages that could not be
applied, so ingest can acknowledge them and move on.
"""

from __future__ import annotations

from datetime import datetime

from enum import StrEnum

from sqlalchemy import Index, LargeBinary, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column

from central.db import Base, StrEnumType


class InboxState(StrEnum):
    PENDING = "pending"  # stored and acknowledged, not applied yet
    PROCESSED = "processed"  # applied, or given up on (see the outcome)


class InboxOutcome(StrEnum):
    APPLIED = "applied"
    TICKET_CREATED = "ticket_created"
    OUT_OF_ORDER = "out_of_order"  # a fault event older than its fault's newest: history only
    DEAD_LETTERED = "dead_lettered"  # failed for good: copied to dead_letters


class InboundMessage(Base):
    """One MQTT message as received. `topic` and `payload` are None only on rows ledgered
    before store-first (revision 0008), which were applied when they were stored."""

    __tablename__ = "inbound_messages"
    __table_args__ = (
        Index("ix_inbound_messages_pending", "id", sqlite_where=text("state = 'pending'"),
              postgresql_where=text("state = 'pending'")),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    message_id: Mapped[str] = mapped_column(String(64), unique=True)
    store_id: Mapped[str] = mapped_column(String(63), index=True)
    kind: Mapped[str] = mapped_column(String(16))
    seq: Mapped[int | None]
    received_at: Mapped[datetime]
    topic: Mapped[str | None] = mapped_column(Text)
    payload: Mapped[bytes | None] = mapped_column(LargeBinary)
    state: Mapped[InboxState] = mapped_column(StrEnumType(InboxState, 16))
    attempts: Mapped[int] = mapped_column(default=0)
    last_error: Mapped[str | None] = mapped_column(Text)
    first_failed_at: Mapped[datetime | None]
    next_attempt_at: Mapped[datetime | None]  # a failed message is not retried before this
    processed_at: Mapped[datetime | None]
    outcome: Mapped[InboxOutcome | None] = mapped_column(StrEnumType(InboxOutcome, 16))


class DeadLetter(Base):
    """A message whose processing failed for good: stored as received, then acknowledged.

    One row per distinct (topic, payload), keyed by `digest`; a redelivery of the same
    message adds its attempts to the row. Columns take any bytes and text, so storing a
    poison message cannot itself fail on its content.
    """

    __tablename__ = "dead_letters"

    id: Mapped[int] = mapped_column(primary_key=True)
    digest: Mapped[str] = mapped_column(String(64), unique=True)  # sha256 of topic and payload
    topic: Mapped[str] = mapped_column(Text)
    store_id: Mapped[str | None] = mapped_column(String(63), index=True)  # from the topic, when it is valid
    message_id: Mapped[str | None] = mapped_column(String(64))  # from the payload, when it has one
    payload: Mapped[bytes] = mapped_column(LargeBinary)
    error: Mapped[str] = mapped_column(Text)
    attempts: Mapped[int]
    first_failed_at: Mapped[datetime]
    last_failed_at: Mapped[datetime]
