"""Technicians and their current load (technicians domain service). Never commits."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from central.auth.models import User
from central.technicians.models import Technician
from central.tickets.assignment import Candidate
from central.tickets.models import ACTIVE_WORK_STATUSES, Ticket


def for_user(*, session: Session, user_id: int) -> Technician | None:
    return session.scalar(select(Technician).where(Technician.user_id == user_id))


def by_username(*, session: Session, username: str) -> Technician | None:
    return session.scalar(select(Technician).join(User, User.id == Technician.user_id).where(User.username == username))


def with_load(*, session: Session) -> Sequence[tuple[Technician, int]]:
    """Every technician with the number of tickets they are working on, ordered by id."""
    load = (
        select(Ticket.assignee_id, func.count().label("n"))
        .where(Ticket.status.in_(ACTIVE_WORK_STATUSES))
        .group_by(Ticket.assignee_id)
        .subquery()
    )
    rows = session.execute(
        select(Technician, func.coalesce(load.c.n, 0))
        .outerjoin(load, load.c.assignee_id == Technician.id)
        .order_by(Technician.id)
    )
    return [(technician, int(count)) for technician, count in rows]


def as_candidates(loaded: Sequence[tuple[Technician, int]]) -> list[Candidate]:
    """What assignment chooses from (`with_load`'s rows; keep those to use the chosen technician)."""
    return [
        Candidate(
            technician_id=technician.id,
            display_name=technician.display_name,
            skills=frozenset(technician.skills),
            active=technician.active and technician.user.active,
            open_tickets=count,
        )
        for technician, count in loaded
    ]
