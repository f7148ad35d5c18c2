"""SLA figures and timers of one ticket (sla domain service). Never commits.

`on_ticket_changed` is the hook every ticket change runs (from `tickets.service._changed`):
when the ticket's SLA-relevant state moved (status, priority, assignee), it recomputes the
figures from the trail and makes the ticket's pending SLA timers match `plan.plan`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from central.sla import plan, policies
from central.sla.clock import Change, Figures, Targets, compute
from central.sla.models import SlaPolicy
from central.db import upsert
from central.timers import service as timers
from central.timers.models import Timer
from central.tickets.models import OPEN_STATUSES, EventType, Link, Ticket, TicketEvent
from protocols.mqtt.messages import FaultClass, TicketClass
from protocols.mqtt.messages import TicketStatusValue as S

_TRAIL_TYPES = (EventType.SLA_WARNING, EventType.ESCALATED, EventType.ASSIGNED, EventType.REASSIGNED,
                EventType.TASK_ESCALATED, EventType.RELEASED)
# the SLA clock (re)starts when a ticket is dispatched anew: reopened, or a store task sent to a technician
_RESTARTS = (EventType.REOPENED, EventType.TASK_ESCALATED, EventType.RELEASED)


@dataclass(frozen=True, slots=True)
class TicketSla:
    figures: Figures
    policy: SlaPolicy
    warned: frozenset[tuple[str, str]]  # (target, stage) warnings recorded
    escalated: dict[str, tuple[int, datetime]]  # target -> (highest level, when)
    escalations: tuple[TicketEvent, ...]
    assignment: plan.Assignment | None  # while waiting to be accepted
    computed_at: datetime


def applies(ticket: Ticket) -> bool:
    """SLAs bind repairs; store tasks are the store's own list, and a fault under an incident is
    covered by the incident's SLA until it is released."""
    return ticket.ticket_class is TicketClass.REPAIR and ticket.link is not Link.INCIDENT


def trail(*, session: Session, ticket_id: int) -> Sequence[TicketEvent]:
    """The events the SLA reads: status changes, assignments, warnings, escalations."""
    return session.scalars(
        select(TicketEvent)
        .where(TicketEvent.ticket_id == ticket_id,
               or_(TicketEvent.to_status.is_not(None), TicketEvent.type.in_(_TRAIL_TYPES)))
        .order_by(TicketEvent.id)
    ).all()


def evaluate(*, session: Session, ticket: Ticket, now: datetime) -> TicketSla:
    sla_policy = policies.policy_for(session=session, fault_class=ticket.fault_class, priority=ticket.priority,
                                     cached=True)
    calendar = policies.calendar_for(session=session, store_id=ticket.store_id) if sla_policy.business_hours else None
    events = trail(session=session, ticket_id=ticket.id)
    start = ticket.created_at
    restart = next((i for i in range(len(events) - 1, -1, -1) if events[i].type in _RESTARTS), None)
    if restart is not None:  # judged from the latest dispatch on; what came before was another round
        start, events = events[restart].at, events[restart + 1:]
    changes = [Change(e.to_status, e.at, e.client_at, e.source) for e in events
               if e.to_status is not None and e.type is not EventType.CREATED]
    targets = Targets(sla_policy.response_min, sla_policy.arrival_min, sla_policy.resolution_min,
                      sla_policy.business_hours)
    figures = compute(start=start, changes=changes, targets=targets, calendar=calendar, now=now)
    warned = frozenset((str(e.data.get("target")), str(e.data.get("stage")))
                       for e in events if e.type is EventType.SLA_WARNING)
    escalations = tuple(e for e in events if e.type is EventType.ESCALATED)
    escalated: dict[str, tuple[int, datetime]] = {}
    for event in escalations:
        target, level = str(event.data.get("target")), int(event.data.get("level", 0))
        if level > escalated.get(target, (0, event.at))[0]:
            escalated[target] = (level, event.at)
    assignment = None
    assignee_id = current_assignee_id(ticket)
    if ticket.status is S.ASSIGNED and assignee_id is not None:
        made = next((e for e in reversed(events) if e.type in (EventType.ASSIGNED, EventType.REASSIGNED)
                     and e.to_status is S.ASSIGNED), None)
        if made is not None:
            assignment = plan.Assignment(assignee_id, made.id, made.at)
    return TicketSla(figures, sla_policy, warned, escalated, escalations, assignment, now)


def with_warning(sla: TicketSla, target: str, stage: str) -> TicketSla:
    """The same figures with one more warning recorded."""
    return replace(sla, warned=sla.warned | {(target, stage)})


def with_escalation(sla: TicketSla, event: TicketEvent) -> TicketSla:
    """The same figures with one more escalation recorded."""
    escalated = dict(sla.escalated)
    escalated[str(event.data["target"])] = (int(event.data["level"]), event.at)
    return replace(sla, escalated=escalated, escalations=(*sla.escalations, event))


def signature(ticket: Ticket) -> str:
    return (f"{ticket.status.value}|{ticket.priority}|{current_assignee_id(ticket)}|{ticket.fault_class.value}|"
            f"{ticket.ticket_class.value}|{ticket.link.value if ticket.link else ''}")


def current_assignee_id(ticket: Ticket) -> int | None:
    """The assignee as set in this transaction (`assignee_id` follows `assignee` only at the next flush)."""
    return ticket.assignee.id if ticket.assignee is not None else None


def on_ticket_changed(*, session: Session, ticket: Ticket, now: datetime) -> None:
    """Re-plan the ticket's SLA timers if its status, priority or assignee moved since the last time."""
    if ticket.sla_signature == signature(ticket):
        return  # e.g. a repeat raise of the fault: nothing the SLA depends on changed
    sync_timers(session=session, ticket=ticket, now=now)


def sync_timers(*, session: Session, ticket: Ticket, now: datetime, sla: TicketSla | None = None) -> TicketSla | None:
    """Make the ticket's pending SLA timers exactly the planned ones (in the caller's transaction).

    `sla`: the ticket's figures when the caller has them up to date (saves reading the trail again)."""
    never_synced = ticket.sla_signature is None  # a ticket created in this transaction has no timers yet
    ticket.sla_signature = signature(ticket)
    existing = {} if never_synced else {
        t.key: t for t in timers.pending_for(session=session, ticket_id=ticket.id) if t.kind in plan.SLA_KINDS}
    if not applies(ticket):
        if existing:
            timers.cancel(session=session, keys=list(existing))
        return None
    sla = sla or evaluate(session=session, ticket=ticket, now=now)
    wanted = plan.plan(
        ticket_id=ticket.id, figures=sla.figures, warned=sla.warned, escalated=sla.escalated,
        escalation_interval=timedelta(minutes=sla.policy.escalation_interval_min), assignment=sla.assignment,
        accept_window=timedelta(minutes=accept_window_min(sla.policy, ticket.priority)), is_open=ticket.is_open,
    )
    wanted_keys = {t.key for t in wanted}
    stale = [k for k in existing if k not in wanted_keys]
    if stale:
        timers.cancel(session=session, keys=stale)
    changed = [t for t in wanted if not _unchanged(existing.get(t.key), t)]
    if len(changed) == 1:
        timer = changed[0]
        timers.schedule(session=session, key=timer.key, kind=timer.kind, due_at=timer.due_at, now=now,
                        ticket_id=ticket.id, data=timer.data)
    elif changed:
        _schedule_many(session, ticket.id, changed, now)
    return sla


def _unchanged(current: Timer | None, planned: plan.PlannedTimer) -> bool:
    return (current is not None and current.due_at == planned.due_at and current.data == dict(planned.data)
            and current.kind == planned.kind and current.failed_at is None)


def _schedule_many(session: Session, ticket_id: int, planned: Sequence[plan.PlannedTimer], now: datetime) -> None:
    """`timers.service.schedule` for several keys in one statement (a new ticket plans nine or ten)."""
    rows = [{"key": t.key, "kind": t.kind, "ticket_id": ticket_id, "due_at": t.due_at, "data": dict(t.data),
             "created_at": now, "attempts": 0, "last_error": None, "failed_at": None} for t in planned]
    stmt = upsert(session, Timer.__table__)
    session.execute(stmt.on_conflict_do_update(
        index_elements=["key"],
        set_={name: stmt.excluded[name] for name in ("kind", "ticket_id", "due_at", "data", "attempts",
                                                     "last_error", "failed_at")},
    ), rows)  # executemany: one compiled statement whatever the number of rows


def resync_open(
    *, session: Session, now: datetime, store_id: str | None = None, fault_class: FaultClass | None = None,
    priority: int | None = None,
) -> int:  # fmt: skip
    """Re-plan the timers of the open repairs a calendar or policy change affects; how many."""
    query = select(Ticket).where(Ticket.status.in_(OPEN_STATUSES), Ticket.ticket_class == TicketClass.REPAIR)
    if store_id is not None:
        query = query.where(Ticket.store_id == store_id)
    if fault_class is not None:
        query = query.where(Ticket.fault_class == fault_class)
    if priority is not None:
        query = query.where(Ticket.priority == priority)
    count = 0
    for ticket in session.scalars(query.order_by(Ticket.id).with_for_update(of=Ticket)).all():
        sync_timers(session=session, ticket=ticket, now=now)
        count += 1
    return count


def accept_window_min(sla_policy: SlaPolicy, priority: int) -> int:
    """How long an assigned repair may wait to be accepted: the policy's window, never past the response target."""
    return min(sla_policy.accept_window_min, sla_policy.response_min)
