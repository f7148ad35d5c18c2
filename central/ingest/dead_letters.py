"""Storing messages that cannot be applied (ingest domain service). Never commits.

The caller gives the dead letter its own transaction: the failed message's transaction has
been rolled back, and nothing of it may be committed with the dead letter.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.orm import Session

from central.db import upsert
from central.ingest.models import DeadLetter
from protocols.mqtt.topics import TopicError, parse_topic

MAX_ERROR_CHARS = 4000


@dataclass(frozen=True, slots=True)
class PoisonMessage:
    """A message given up on: as received, with the last error and how often it failed."""

    topic: str
    payload: bytes
    error: str
    attempts: int
    first_failed_at: datetime
    last_failed_at: datetime


def digest(topic: str, payload: bytes) -> str:
    """The identity of a raw message (the same bytes redelivered have the same digest)."""
    return hashlib.sha256(topic.encode("utf-8", "backslashreplace") + b"\0" + payload).hexdigest()


def _text(value: str, limit: int | None = None) -> str:
    """Any text PostgreSQL and SQLite accept (no NUL)."""
    value = value.replace("\x00", "\\x00")
    return value if limit is None else value[:limit]


def _message_id(payload: bytes) -> str | None:
    """The message_id the payload claims, when it is JSON and has a plausible one."""
    try:
        data = json.loads(payload)
    except (ValueError, RecursionError):
        return None
    value = data.get("message_id") if isinstance(data, dict) else None
    if isinstance(value, str) and 0 < len(value) <= 64 and "\x00" not in value:
        return value
    return None


def _store_id(topic: str) -> str | None:
    try:
        return parse_topic(topic)[0]
    except TopicError:
        return None


def record(*, session: Session, message: PoisonMessage) -> None:
    """Insert the dead letter, or add a redelivery's attempts to the row of the same message."""
    table = DeadLetter.__table__
    stmt = upsert(session, table).values(
        digest=digest(message.topic, message.payload), topic=_text(message.topic), store_id=_store_id(message.topic),
        message_id=_message_id(message.payload), payload=message.payload,
        error=_text(message.error, MAX_ERROR_CHARS), attempts=message.attempts,
        first_failed_at=message.first_failed_at, last_failed_at=message.last_failed_at,
    )
    session.execute(stmt.on_conflict_do_update(
        index_elements=["digest"],
        set_={"attempts": table.c.attempts + stmt.excluded.attempts, "error": stmt.excluded.error,
              "last_failed_at": stmt.excluded.last_failed_at},
    ))
