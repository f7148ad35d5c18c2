"""Ingest ledgers (ingest domain: ORM models).

`inbound_messages` is the idempotency ledger (key `message_id`); `dead_letters` keeps the
raw messages that could not be applied, so ingest can acknowledge them and move on.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import LargeBinary, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from central.db import Base


class InboundMessage(Base):
    __tablename__ = "inbound_messages"

    id: Mapped[int] = mapped_column(primary_key=True)
    message_id: Mapped[str] = mapped_column(String(64), unique=True)
    store_id: Mapped[str] = mapped_column(String(63), index=True)
    kind: Mapped[str] = mapped_column(String(16))
    seq: Mapped[int | None]
    received_at: Mapped[datetime]


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
