"""SLA timer handlers (sla domain, cross-domain flow): warn, escalate, reassign. Never commits.

Each handler runs in the timer loop's transaction (`central.timers.service.run_pass`) after
its timer row is gone. It locks the ticket (`SELECT ... FOR UPDATE`), recomputes the figures
and acts only if the reason still holds: a timer for a target met, paused or closed
meanwhile, or for a level someone already reached, does nothing but re-plan. So two workers
firing duplicate timers, or a timer that outlived its reason, never escalate twice.

Escalation chain after a breach: level 1 the assignee, level 2 the supervisor(s) of the
store's region, level 3 the regional manager(s); the next level follows after the policy's
`escalation_interval_min` while the target is still unmet.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from central.auth.models import Role, User
from central.notify import service as notifications
from central.sla import service
from central.sla.clock import Stage, TargetFigures
from central.sla.models import SlaTarget
from central.sla.plan import ACCEPT_KIND, BREACH_KIND, ESCALATION_KIND, WARNING_KIND
from central.stores.models import Store
from central.tickets import service as tickets
from central.tickets.models import EventType, Source, Ticket, TicketEvent
from central.timers.models import Timer
from central.timers.service import TimerRegistry
from protocols.mqtt.messages import TicketStatusValue as S

log = logging.getLogger(__name__)

LEVEL_ROLES = {2: "supervisor", 3: "regional_manager"}  # Role values
LEVEL_NAMES = {1: "assignee", 2: "supervisor", 3: "regional manager"}


def register_timers(registry: TimerRegistry) -> None:
    """The SLA's timer kinds (called by `central.app.timer_registry`)."""
    registry.register(WARNING_KIND, on_warning)
    registry.register(BREACH_KIND, on_escalation)
    registry.register(ESCALATION_KIND, on_escalation)
    registry.register(ACCEPT_KIND, on_accept_window)


def _locked(session: Session, timer: Timer, now: datetime) -> Ticket | None:
    """The timer's ticket, locked and read as locked; None when there is nothing to do for it."""
    if timer.ticket_id is None:
        raise ValueError(f"SLA timer {timer.key} has no ticket")
    ticket = session.scalar(select(Ticket).where(Ticket.id == timer.ticket_id).with_for_update(of=Ticket)
                            .execution_options(populate_existing=True))
    if ticket is None:
        return None  # deleted meanwhile (its timers cascade away too)
    if not ticket.is_open or not service.applies(ticket):
        service.sync_timers(session=session, ticket=ticket, now=now)
        return None
    return ticket


def _record(session: Session, ticket: Ticket, *, event_type: EventType, now: datetime, note: str,
            data: dict[str, Any]) -> TicketEvent:
    event = TicketEvent(ticket_id=ticket.id, at=now, client_at=None, type=event_type, from_status=None,
                        to_status=None, actor=None, source=Source.TIMER, note=note, data=data)
    session.add(event)
    return event


def notify(session: Session, ticket: Ticket, event: TicketEvent, now: datetime, recipients: list[str] | None) -> None:
    """Hand the event to the notifier (central.notify): the assignee, plus the usernames given (escalations)."""
    notifications.for_ticket_event(session=session, ticket=ticket, event=event, now=now, recipients=recipients)


def _minutes(figure: TargetFigures) -> dict[str, Any]:
    return {"allowed_min": round(figure.allowed.total_seconds() / 60, 1),
            "elapsed_min": round(figure.elapsed.total_seconds() / 60, 1),
            "due_at": figure.due_at.isoformat() if figure.due_at else None}


def on_warning(session: Session, timer: Timer, now: datetime) -> None:
    ticket = _locked(session, timer, now)
    if ticket is None:
        return
    target, stage = SlaTarget(timer.data["target"]), Stage(timer.data["stage"])
    sla = service.evaluate(session=session, ticket=ticket, now=now)
    figure = sla.figures.of(target)
    due = figure.stage_due[stage]
    if figure.running and (target.value, stage.value) not in sla.warned and due is not None and due <= now:
        percent = 50 if stage is Stage.WARN50 else 75
        event = _record(session, ticket, event_type=EventType.SLA_WARNING, now=now,
                        note=f"{percent}% of the {target.value} time used; due at {figure.due_at:%Y-%m-%d %H:%M} UTC",
                        data={"target": target.value, "stage": stage.value, **_minutes(figure)})
        notify(session, ticket, event, now, None)
        sla = service.with_warning(sla, target.value, stage.value)
    service.sync_timers(session=session, ticket=ticket, now=now, sla=sla)


def recipients(session: Session, ticket: Ticket, level: int) -> list[str]:
    """Usernames to escalate to: the assignee (1), the region's supervisors (2), regional managers (3)."""
    if level == 1:
        return [ticket.assignee.user.username] if ticket.assignee is not None else []
    role = Role(LEVEL_ROLES[level])
    region = session.scalar(select(Store.region).where(Store.id == ticket.store_id)) or ""
    query = select(User.username).where(User.role == role, User.active.is_(True))
    if region:  # a store with no region escalates to every supervisor / regional manager
        query = query.where(User.region == region)
    return list(session.scalars(query.order_by(User.username)))


def on_escalation(session: Session, timer: Timer, now: datetime) -> None:
    ticket = _locked(session, timer, now)
    if ticket is None:
        return
    target, level = SlaTarget(timer.data["target"]), int(timer.data["level"])
    sla = service.evaluate(session=session, ticket=ticket, now=now)
    figure = sla.figures.of(target)
    reached = sla.escalated.get(target.value, (0, now))[0]
    if figure.running and figure.breached and level == reached + 1:
        names = recipients(session, ticket, level)
        who = ", ".join(names) if names else f"nobody: no {LEVEL_NAMES[level]} to tell"
        event = _record(session, ticket, event_type=EventType.ESCALATED, now=now,
                        note=f"{target.value} target breached: escalated to the {LEVEL_NAMES[level]} ({who})",
                        data={"target": target.value, "level": level, "recipients": names, **_minutes(figure)})
        notify(session, ticket, event, now, names)
        sla = service.with_escalation(sla, event)
    service.sync_timers(session=session, ticket=ticket, now=now, sla=sla)


def on_accept_window(session: Session, timer: Timer, now: datetime) -> None:
    ticket = _locked(session, timer, now)
    if ticket is None:
        return
    sla = service.evaluate(session=session, ticket=ticket, now=now)
    window = service.accept_window_min(sla.policy, ticket.priority)
    assignment = sla.assignment
    still_waiting = (ticket.status is S.ASSIGNED and assignment is not None
                     and assignment.event_id == timer.data.get("event_id")
                     and assignment.technician_id == timer.data.get("technician_id")
                     and (now - assignment.at).total_seconds() >= window * 60)
    if not still_waiting:
        service.sync_timers(session=session, ticket=ticket, now=now, sla=sla)
        return
    tickets.reassign_unaccepted(session=session, ticket=ticket, now=now, waited_min=window)
    event = session.scalars(select(TicketEvent).where(TicketEvent.ticket_id == ticket.id,
                                                      TicketEvent.type == EventType.REASSIGNED)
                            .order_by(TicketEvent.id.desc()).limit(1)).one()
    notify(session, ticket, event, now, None)
