"""SLA API (sla domain, HTTP): thin routes, the request owns the transaction.

    GET  /tickets/{id}/sla                          each target: due, met, elapsed/remaining, paused,
                                                    breached, warnings and escalations
    POST /tickets/{id}/priority                     dispatchers, supervisors, admins
    GET  /priority-rules, PUT /priority-rules       read: signed in; replace: admins
    GET  /sla-policies, PUT /sla-policies/{fault_class}/{priority}      update: admins
    GET|PUT|DELETE /stores/{id}/calendar            change: facilities and admins
    PATCH /stores/{id}/devices/{device_id}          criticality; facilities and admins
"""

from __future__ import annotations

from fastapi import APIRouter, Response
from fastapi.exceptions import RequestValidationError

from central.auth.models import Role, User
from central.auth.permissions import check_store
from central.deps import CurrentUser, RuntimeDep, SessionDep
from central.errors import PermissionDeniedError
from central.sla import policies, schemas, service
from central.sla.models import StoreCalendar
from central.sla.service import TicketSla
from central.stores import service as stores
from central.technicians import service as technicians
from central.tickets import schemas as ticket_schemas
from central.tickets import service as tickets
from central.tickets.models import Ticket
from protocols.mqtt.messages import FaultClass

router = APIRouter(tags=["sla"])
ADMINS = frozenset({Role.ADMIN})
FACILITIES = frozenset({Role.FACILITIES, Role.ADMIN})


def _require(user: User, roles: frozenset[Role], what: str) -> None:
    if user.role not in roles:
        raise PermissionDeniedError(f"only {' and '.join(sorted(r.value for r in roles))} may {what}")


def _minutes(seconds: float) -> float:
    return round(seconds / 60, 2)


def sla_read(ticket: Ticket, sla: TicketSla, *, timezone: str | None) -> schemas.TicketSlaRead:
    targets = []
    for figure in sla.figures.targets:
        name = figure.target.value
        targets.append(schemas.TargetRead(
            target=figure.target, allowed_min=_minutes(figure.allowed.total_seconds()), due_at=figure.due_at,
            met_at=figure.met_at, elapsed_min=_minutes(figure.elapsed.total_seconds()),
            remaining_min=_minutes(figure.remaining.total_seconds()), paused=figure.paused,
            breached=figure.breached, stopped=figure.stopped,
            warnings=sorted(stage for target, stage in sla.warned if target == name),
            escalations=[schemas.EscalationRead(level=int(e.data.get("level", 0)), at=e.at,
                                                recipients=list(e.data.get("recipients", [])))
                         for e in sla.escalations if e.data.get("target") == name],
        ))
    return schemas.TicketSlaRead(
        ticket_id=ticket.id, priority=ticket.priority, fault_class=ticket.fault_class,
        business_hours=sla.policy.business_hours, calendar_timezone=timezone if sla.policy.business_hours else None,
        started_at=sla.figures.start, paused=sla.figures.paused, paused_from=ticket.paused_from,
        computed_at=sla.computed_at, targets=targets,
    )


@router.get("/tickets/{ticket_id}/sla", response_model=schemas.TicketSlaRead)
def ticket_sla(ticket_id: int, session: SessionDep, runtime: RuntimeDep, user: CurrentUser) -> schemas.TicketSlaRead:
    ticket = tickets.get(session=session, ticket_id=ticket_id)
    if not tickets.can_view(ticket, user=user, technician=technicians.for_user(session=session, user_id=user.id)):
        raise PermissionDeniedError("this ticket is not assigned to you")
    sla = service.evaluate(session=session, ticket=ticket, now=runtime.clock.now())
    row = policies.calendar_row(session=session, store_id=ticket.store_id)
    return sla_read(ticket, sla, timezone=row.timezone if row is not None else None)


@router.post("/tickets/{ticket_id}/priority", response_model=ticket_schemas.TicketRead)
def change_priority(ticket_id: int, body: schemas.PriorityBody, session: SessionDep, runtime: RuntimeDep,
                    user: CurrentUser) -> ticket_schemas.TicketRead:
    ticket = tickets.change_priority(session=session, ticket_id=ticket_id, priority=body.priority, user=user,
                                     now=runtime.clock.now(), reason=body.reason,
                                     expected_version=body.expected_version)
    session.commit()
    return ticket_schemas.ticket_read(ticket)


@router.get("/priority-rules", response_model=list[schemas.PriorityRuleRead])
def list_rules(session: SessionDep, _user: CurrentUser) -> list[schemas.PriorityRuleRead]:
    return [schemas.PriorityRuleRead.model_validate(r) for r in policies.list_rules(session=session)]


@router.put("/priority-rules", response_model=list[schemas.PriorityRuleRead])
def replace_rules(body: schemas.PriorityRulesBody, session: SessionDep, user: CurrentUser) -> list[
        schemas.PriorityRuleRead]:
    _require(user, ADMINS, "replace the priority rules")
    policies.replace_rules(session=session, rules=[(r.fault_class, r.severity, r.criticality, r.priority)
                                                   for r in body.rules])
    session.commit()
    return [schemas.PriorityRuleRead.model_validate(r) for r in policies.list_rules(session=session)]


@router.get("/sla-policies", response_model=list[schemas.SlaPolicyRead])
def list_policies(session: SessionDep, _user: CurrentUser) -> list[schemas.SlaPolicyRead]:
    return [schemas.SlaPolicyRead.model_validate(p) for p in policies.list_policies(session=session)]


@router.put("/sla-policies/{fault_class}/{priority}", response_model=schemas.SlaPolicyRead)
def update_policy(fault_class: FaultClass, priority: schemas.Priority, body: schemas.SlaPolicyBody,
                  session: SessionDep, runtime: RuntimeDep, user: CurrentUser) -> schemas.SlaPolicyRead:
    _require(user, ADMINS, "change SLA policies")
    if fault_class is FaultClass.FOOD_SAFETY and body.business_hours:
        raise RequestValidationError([{"type": "value_error", "loc": ("body", "business_hours"), "input": True,
                                       "msg": "food safety runs 24/7: business_hours must be false"}])
    now = runtime.clock.now()
    row = policies.update_policy(session=session, fault_class=fault_class, priority=priority, by=user.username,
                                 now=now, **body.model_dump())
    service.resync_open(session=session, now=now, fault_class=fault_class, priority=priority)
    session.commit()
    return schemas.SlaPolicyRead.model_validate(row)


def _calendar(store_id: str, row: StoreCalendar | None) -> schemas.CalendarRead:
    if row is None:
        return schemas.CalendarRead(store_id=store_id, timezone="UTC", hours={d: [["00:00", "24:00"]] for d in
                                    ("mon", "tue", "wed", "thu", "fri", "sat", "sun")}, always_open=True)
    return schemas.CalendarRead.model_validate(row)


@router.get("/stores/{store_id}/calendar", response_model=schemas.CalendarRead)
def get_calendar(store_id: str, session: SessionDep, user: CurrentUser) -> schemas.CalendarRead:
    check_store(user, store_id)
    stores.get_store(session=session, store_id=store_id)
    return _calendar(store_id, policies.calendar_row(session=session, store_id=store_id))


@router.put("/stores/{store_id}/calendar", response_model=schemas.CalendarRead)
def put_calendar(store_id: str, body: schemas.CalendarBody, session: SessionDep, runtime: RuntimeDep,
                 user: CurrentUser) -> schemas.CalendarRead:
    _require(user, FACILITIES, "set a store's calendar")
    stores.get_store(session=session, store_id=store_id)
    now = runtime.clock.now()
    row = policies.put_calendar(session=session, store_id=store_id, timezone=body.timezone, hours=body.hours,
                                holidays=body.holidays, by=user.username, now=now)
    service.resync_open(session=session, now=now, store_id=store_id)
    session.commit()
    return _calendar(store_id, row)


@router.delete("/stores/{store_id}/calendar", status_code=204)
def delete_calendar(store_id: str, session: SessionDep, runtime: RuntimeDep, user: CurrentUser) -> Response:
    _require(user, FACILITIES, "remove a store's calendar")
    stores.get_store(session=session, store_id=store_id)
    policies.delete_calendar(session=session, store_id=store_id)
    service.resync_open(session=session, now=runtime.clock.now(), store_id=store_id)
    session.commit()
    return Response(status_code=204)


@router.patch("/stores/{store_id}/devices/{device_id}", response_model=schemas.DeviceCriticalityRead)
def set_criticality(store_id: str, device_id: str, body: schemas.CriticalityBody, session: SessionDep,
                    user: CurrentUser) -> schemas.DeviceCriticalityRead:
    _require(user, FACILITIES, "set a device's criticality")
    device = policies.set_criticality(session=session, store_id=store_id, device_id=device_id,
                                      criticality=body.criticality)
    session.commit()
    return schemas.DeviceCriticalityRead(store_id=device.store_id, device_id=device.device_id,
                                         criticality=device.criticality)
