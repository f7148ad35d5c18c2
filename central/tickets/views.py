"""Tickets API (tickets domain, HTTP): thin routes, the request owns the transaction."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, Query

from central.auth.models import Role, User
from central.auth.permissions import store_scope
from central.deps import CurrentUser, RuntimeDep, SessionDep
from central.errors import PermissionDeniedError
from central.stores.models import Device, Store
from central.technicians import service as technicians
from central.tickets import schemas, service
from central.tickets.models import Source
from central.tickets.policy import Action
from protocols.mqtt.messages import TicketStatusValue

router = APIRouter(prefix="/tickets", tags=["tickets"])


@router.get("", response_model=list[schemas.TicketRead])
def list_tickets(
    session: SessionDep,
    user: CurrentUser,
    status: Annotated[list[TicketStatusValue] | None, Query()] = None,
    store_id: str | None = None,
    assignee: Annotated[str | None, Query(description="'me' or a username")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> list[schemas.TicketRead]:
    scope = store_scope(user)
    if scope is not None:  # store staff: their own store's tickets only
        if store_id is not None and store_id != scope:
            return []
        store_id = scope
    me = technicians.for_user(session=session, user_id=user.id)
    if user.role is Role.TECHNICIAN or assignee == "me":
        wanted = me  # a technician sees only their own jobs, whatever they ask for
    elif assignee:
        wanted = technicians.by_username(session=session, username=assignee)
    else:
        wanted = None
    if (user.role is Role.TECHNICIAN or assignee) and wanted is None:
        return []
    assignee_id = wanted.id if wanted is not None else None
    rows = service.list_tickets(session=session, statuses=status or (), store_id=store_id, assignee_id=assignee_id,
                                limit=limit, offset=offset)
    return [schemas.ticket_read(t) for t in rows]


@router.get("/{ticket_id}", response_model=schemas.TicketDetail)
def get_ticket(ticket_id: int, session: SessionDep, user: CurrentUser) -> schemas.TicketDetail:
    ticket = service.get(session=session, ticket_id=ticket_id)
    me = technicians.for_user(session=session, user_id=user.id)
    if not service.can_view(ticket, user=user, technician=me):
        raise PermissionDeniedError("this ticket is not assigned to you" if user.role is Role.TECHNICIAN
                                    else "store staff see only their own store's tickets")
    store = session.get_one(Store, ticket.store_id)
    device = session.get(Device, (ticket.store_id, ticket.device_id))
    return schemas.ticket_detail(ticket, list(service.events_of(session=session, ticket_id=ticket.id)),
                                 store_name=store.name, store_online=store.online,
                                 device_online=device.online if device else None,
                                 children=list(service.children_of(session=session, ticket_id=ticket.id,
                                                                   open_only=False, for_update=False)))


def _act(
    session: SessionDep, runtime: RuntimeDep, user: User, ticket_id: int, action: Action, body: schemas.ActionBody,
    **extra: object,
) -> schemas.TicketRead:  # fmt: skip
    ticket = service.act(session=session, ticket_id=ticket_id, action=action, user=user, now=runtime.clock.now(),
                         note=body.note, client_at=body.client_time, expected_version=body.expected_version,
                         source=Source(body.source), **extra)  # type: ignore[arg-type]
    session.commit()
    return schemas.ticket_read(ticket)


_NO_BODY = schemas.ActionBody()
OptionalBody = Annotated[schemas.ActionBody | None, Body()]


@router.post("/{ticket_id}/accept", response_model=schemas.TicketRead)
def accept(ticket_id: int, session: SessionDep, runtime: RuntimeDep, user: CurrentUser,
           body: OptionalBody = None) -> schemas.TicketRead:
    return _act(session, runtime, user, ticket_id, Action.ACCEPT, body or _NO_BODY)


@router.post("/{ticket_id}/decline", response_model=schemas.TicketRead)
def decline(ticket_id: int, body: schemas.DeclineBody, session: SessionDep, runtime: RuntimeDep,
            user: CurrentUser) -> schemas.TicketRead:
    return _act(session, runtime, user, ticket_id, Action.DECLINE,
                body.model_copy(update={"note": body.reason + (f" ({body.note})" if body.note else "")}))


@router.post("/{ticket_id}/en-route", response_model=schemas.TicketRead)
def en_route(ticket_id: int, session: SessionDep, runtime: RuntimeDep, user: CurrentUser,
             body: Annotated[schemas.EnRouteBody | None, Body()] = None) -> schemas.TicketRead:
    body = body or schemas.EnRouteBody()
    return _act(session, runtime, user, ticket_id, Action.EN_ROUTE, body, eta=body.eta)


@router.post("/{ticket_id}/arrive", response_model=schemas.TicketRead)
def arrive(ticket_id: int, session: SessionDep, runtime: RuntimeDep, user: CurrentUser,
           body: OptionalBody = None) -> schemas.TicketRead:
    return _act(session, runtime, user, ticket_id, Action.ARRIVE, body or _NO_BODY)


@router.post("/{ticket_id}/resolve", response_model=schemas.TicketRead)
def resolve(ticket_id: int, body: schemas.ResolveBody, session: SessionDep, runtime: RuntimeDep,
            user: CurrentUser) -> schemas.TicketRead:
    return _act(session, runtime, user, ticket_id, Action.RESOLVE, body, resolution_code=body.resolution_code)


@router.post("/{ticket_id}/close", response_model=schemas.TicketRead)
def close(ticket_id: int, session: SessionDep, runtime: RuntimeDep, user: CurrentUser,
          body: OptionalBody = None) -> schemas.TicketRead:
    return _act(session, runtime, user, ticket_id, Action.CLOSE, body or _NO_BODY)


@router.post("/{ticket_id}/cancel", response_model=schemas.TicketRead)
def cancel(ticket_id: int, body: schemas.CancelBody, session: SessionDep, runtime: RuntimeDep,
           user: CurrentUser) -> schemas.TicketRead:
    return _act(session, runtime, user, ticket_id, Action.CANCEL,
                body.model_copy(update={"note": body.reason + (f" ({body.note})" if body.note else "")}))


@router.post("/{ticket_id}/assign", response_model=schemas.TicketRead)
def assign(ticket_id: int, body: schemas.AssignBody, session: SessionDep, runtime: RuntimeDep,
           user: CurrentUser) -> schemas.TicketRead:
    return _act(session, runtime, user, ticket_id, Action.ASSIGN, body, technician_id=body.technician_id)


@router.post("/{ticket_id}/await-parts", response_model=schemas.TicketRead)
def await_parts(ticket_id: int, body: schemas.AwaitPartsBody, session: SessionDep, runtime: RuntimeDep,
                user: CurrentUser) -> schemas.TicketRead:
    """On site, a part is needed: the SLA clock pauses until `resume`."""
    note = f"awaiting part: {body.part}" + (f" ({body.note})" if body.note else "")
    return _act(session, runtime, user, ticket_id, Action.AWAIT_PARTS, body.model_copy(update={"note": note}))


@router.post("/{ticket_id}/hold", response_model=schemas.TicketRead)
def hold(ticket_id: int, body: schemas.HoldBody, session: SessionDep, runtime: RuntimeDep,
         user: CurrentUser) -> schemas.TicketRead:
    """No store access, or waiting on the store: the SLA clock pauses until `resume`."""
    return _act(session, runtime, user, ticket_id, Action.HOLD,
                body.model_copy(update={"note": body.reason + (f" ({body.note})" if body.note else "")}))


@router.post("/{ticket_id}/resume", response_model=schemas.TicketRead)
def resume(ticket_id: int, session: SessionDep, runtime: RuntimeDep, user: CurrentUser,
           body: OptionalBody = None) -> schemas.TicketRead:
    """Back to the status the ticket was paused from; the SLA clock runs again."""
    return _act(session, runtime, user, ticket_id, Action.RESUME, body or _NO_BODY)
