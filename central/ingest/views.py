"""Dead letters: messages central gave up on, for an operator to inspect (ingest domain, HTTP)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import BaseModel
from sqlalchemy import func, select

from central.auth.models import Role
from central.deps import CurrentUser, SessionDep
from central.errors import PermissionDeniedError
from central.ingest.models import DeadLetter

router = APIRouter(tags=["ingest"])
PREVIEW_BYTES = 2000
ALLOWED = (Role.ADMIN, Role.DISPATCHER)


class DeadLetterRead(BaseModel):
    id: int
    topic: str
    store_id: str | None
    message_id: str | None
    error: str
    attempts: int
    first_failed_at: datetime
    last_failed_at: datetime
    payload_bytes: int
    payload_preview: str  # the first 2,000 bytes as UTF-8, undecodable bytes replaced


class DeadLetterPage(BaseModel):
    total: int
    items: list[DeadLetterRead]


@router.get("/dead-letters", response_model=DeadLetterPage)
def list_dead_letters(
    session: SessionDep,
    user: CurrentUser,
    store_id: str | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> DeadLetterPage:
    """Newest failures first. Admins and dispatchers only: payloads may hold any store's data."""
    if user.role not in ALLOWED:
        raise PermissionDeniedError("dead letters are for admins and dispatchers")
    query = select(DeadLetter)
    if store_id is not None:
        query = query.where(DeadLetter.store_id == store_id)
    total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
    rows = session.scalars(query.order_by(DeadLetter.last_failed_at.desc(), DeadLetter.id.desc())
                           .limit(limit).offset(offset)).all()
    return DeadLetterPage(total=total, items=[
        DeadLetterRead(id=r.id, topic=r.topic, store_id=r.store_id, message_id=r.message_id, error=r.error,
                       attempts=r.attempts, first_failed_at=r.first_failed_at, last_failed_at=r.last_failed_at,
                       payload_bytes=len(r.payload),
                       payload_preview=r.payload[:PREVIEW_BYTES].decode("utf-8", "replace"))
        for r in rows
    ])
