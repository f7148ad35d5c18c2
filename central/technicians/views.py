"""Technicians and their load (technicians domain, HTTP, read-only)."""

from __future__ import annotations

from fastapi import APIRouter

from central.auth.permissions import Permission, check
from central.deps import CurrentUser, SessionDep
from central.technicians import service
from central.technicians.models import TechnicianRead

router = APIRouter(tags=["technicians"])


@router.get("/technicians", response_model=list[TechnicianRead])
def list_technicians(session: SessionDep, user: CurrentUser) -> list[TechnicianRead]:
    check(user, Permission.TECHNICIANS_READ)
    return [
        TechnicianRead(id=t.id, username=t.user.username, display_name=t.user.display_name, skills=list(t.skills),
                       region=t.region, active=t.active, open_tickets=load)
        for t, load in service.with_load(session=session)
    ]
