"""Tickets (tickets domain service): open from faults, transitions, dispatch. Never commits.

Every change bumps `version`, appends a `TicketEvent` and enqueues the ticket's full
`TicketStatus` for its store in the caller's transaction.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from central import deferred
from central.auth.models import Role, User
from central.db import insert_entity
from central.errors import InvalidTransitionError, NotFoundError, PermissionDeniedError, VersionConflictError
from central.notify import service as notifications
from central.outbox import service as outbox
from central.sla import policies as sla_policies
from central.sla import service as sla
from central.technicians import service as technicians
from central.timers import service as timers
from central.technicians.models import Technician
from central.tickets import policy
from central.tickets.assignment import Choice, choose_technician
from central.tickets.models import (
    CLOSED_STATUSES,
    OPEN_STATUSES,
    OPEN_TICKET_WHERE,
    EventType,
    Link,
    Source,
    Ticket,
    TicketEvent,
)
from central.tickets.policy import Action
from protocols.mqtt.messages import FaultEvent, FaultState, TicketClass, TicketStatus, TicketStatusValue
from protocols.mqtt.topics import TopicKind, topic

log = logging.getLogger(__name__)


# --- reading ------------------------------------------------------------------------------------
def get(*, session: Session, ticket_id: int, for_update: bool = False) -> Ticket:
    query = select(Ticket).where(Ticket.id == ticket_id)
    if for_update:
        query = query.with_for_update(of=Ticket)
    ticket = session.scalar(query)
    if ticket is None:
        raise NotFoundError(f"no ticket {ticket_id}")
    return ticket


def find_open(*, session: Session, store_id: str, device_id: str, fault_code: str) -> Ticket | None:
    return session.scalar(
        select(Ticket)
        .where(Ticket.store_id == store_id, Ticket.device_id == device_id, Ticket.fault_code == fault_code,
               Ticket.status.in_(OPEN_STATUSES))
        .with_for_update(of=Ticket)
        .execution_options(populate_existing=True)
    )


def latest_with_active_fault(*, session: Session, store_id: str, device_id: str, fault_code: str) -> Ticket | None:
    return session.scalar(
        select(Ticket)
        .where(Ticket.store_id == store_id, Ticket.device_id == device_id, Ticket.fault_code == fault_code,
               Ticket.fault_active.is_(True))
        .order_by(Ticket.id.desc())
        .limit(1)
        .with_for_update(of=Ticket)
    )


def latest_for_fault(*, session: Session, store_id: str, device_id: str, fault_code: str) -> Ticket | None:
    """The newest ticket of this fault, open or not."""
    return session.scalar(
        select(Ticket)
        .where(Ticket.store_id == store_id, Ticket.device_id == device_id, Ticket.fault_code == fault_code)
        .order_by(Ticket.id.desc())
        .limit(1)
        .with_for_update(of=Ticket)
        .execution_options(populate_existing=True)
    )


def resolved_at(*, session: Session, ticket_id: int) -> datetime | None:
    """When the ticket last became resolved (server time), from its trail."""
    return session.scalar(select(func.max(TicketEvent.at))
                          .where(TicketEvent.ticket_id == ticket_id,
                                 TicketEvent.to_status == TicketStatusValue.RESOLVED))


def list_tickets(
    *,
    session: Session,
    statuses: Collection[TicketStatusValue] = (),
    store_id: str | None = None,
    assignee_id: int | None = None,
    limit: int = 100,
    offset: int = 0,
) -> Sequence[Ticket]:
    query = select(Ticket).order_by(Ticket.priority, Ticket.created_at, Ticket.id)
    if statuses:
        query = query.where(Ticket.status.in_(list(statuses)))
    if store_id is not None:
        query = query.where(Ticket.store_id == store_id)
    if assignee_id is not None:
        query = query.where(Ticket.assignee_id == assignee_id)
    return session.scalars(query.limit(limit).offset(offset)).all()


def events_of(*, session: Session, ticket_id: int) -> Sequence[TicketEvent]:
    return session.scalars(select(TicketEvent).where(TicketEvent.ticket_id == ticket_id).order_by(TicketEvent.id)).all()


def can_view(ticket: Ticket, *, user: User, technician: Technician | None) -> bool:
    """A technician sees only the tickets assigned to them, store staff only their store's; others all."""
    if user.role is Role.STORE_STAFF:
        return user.store_id is not None and ticket.store_id == user.store_id
    if technician is None:
        return user.role is not Role.TECHNICIAN
    return ticket.assignee_id == technician.id


# --- recording a change -------------------------------------------------------------------------
def status_message(ticket: Ticket, *, now: datetime, note: str = "") -> TicketStatus:
    return TicketStatus(
        store_id=ticket.store_id,
        sent_at=now,
        ticket_id=ticket.id,
        ticket_number=ticket.number,
        version=ticket.version,
        device_id=ticket.device_id,
        fault_code=ticket.fault_code,
        status=ticket.status,
        priority=ticket.priority,
        title=ticket.title[:200],
        assignee=ticket.assignee.display_name[:100] if ticket.assignee else None,
        eta=ticket.eta,
        note=note[:2000],
        fault_active=ticket.fault_active,
        changed_at=now,
    )


def _record(
    session: Session, ticket: Ticket, *, event_type: EventType, now: datetime, source: Source, actor: str | None = None,
    note: str = "", client_at: datetime | None = None, from_status: TicketStatusValue | None = None,
    to_status: TicketStatusValue | None = None, data: dict[str, Any] | None = None,
) -> TicketEvent:  # fmt: skip
    event = TicketEvent(ticket_id=ticket.id, at=now, client_at=client_at, type=event_type, from_status=from_status,
                        to_status=to_status, actor=actor, source=source, note=note, data=data or {})
    session.add(event)
    return event


class _StatusDue:
    """A changed ticket's SLA re-plan and its status for the store, once per unit of work
    (`central.deferred`), from the ticket's final state: the store gets the newest version
    with the notes of the steps that led to it, not one message per step."""

    __slots__ = ("ticket", "now", "note")

    def __init__(self, ticket: Ticket, now: datetime, note: str) -> None:
        self.ticket, self.now, self.note = ticket, now, note

    def __copy__(self) -> _StatusDue:
        return _StatusDue(self.ticket, self.now, self.note)

    def __call__(self, session: Session) -> None:
        ticket = self.ticket
        sla.on_ticket_changed(session=session, ticket=ticket, now=self.now)
        if ticket.id is None:
            session.flush()
        outbox.enqueue(session=session, message=status_message(ticket, now=self.now, note=self.note),
                       topic=topic(ticket.store_id, TopicKind.TICKET_STATUS), now=self.now, ticket_id=ticket.id)


def _changed(session: Session, ticket: Ticket, *, now: datetime, note: str = "", bump: bool = True) -> None:
    """Bump the version; the SLA re-plan and the status for the store follow when the unit of
    work ends (several changes of one ticket in it make one message, with their notes joined)."""
    if bump:
        ticket.version += 1
    ticket.updated_at = now
    due = deferred.pending(session).get(("ticket-status", id(ticket)))
    if isinstance(due, _StatusDue):
        due.now = now
        if note and note != due.note:
            due.note = f"{due.note}; {note}" if due.note else note
    else:
        deferred.defer(session, ("ticket-status", id(ticket)), _StatusDue(ticket, now, note))


def _fault_data(fault: FaultEvent) -> dict[str, Any]:
    return {"message_id": fault.message_id, "seq": fault.seq, "occurred_at": fault.occurred_at.isoformat(),
            "evidence": dict(fault.evidence)}


# --- faults -------------------------------------------------------------------------------------
def open_for_fault(
    *, session: Session, fault: FaultEvent, skill: str | None, now: datetime, cleared_at: datetime | None = None,
    none_open: bool = False,
) -> tuple[Ticket, bool]:
    """The open ticket of this fault, created if there is none: (ticket, created).

    `cleared_at` opens the ticket for a fault that has already cleared (its clear reached
    central before this raise): the fault did happen, but is not active. `none_open`: the
    caller has just looked and found none (saves the query; the race is still handled).

    Two workers may both find none and both insert; the unique partial index lets one win
    (INSERT ... ON CONFLICT DO NOTHING, one statement) and the other reads the winner's ticket.
    """
    key = {"store_id": fault.store_id, "device_id": fault.device_id, "fault_code": fault.fault_code}
    existing = None if none_open else find_open(session=session, **key)
    if existing is not None:
        return existing, False
    values = dict(
        **key, device_model=fault.device_model,
        title=(fault.description or f"{fault.fault_code.replace('_', ' ')} on {fault.device_id}")[:200],
        location=fault.location, ticket_class=fault.ticket_class, fault_class=fault.fault_class,
        severity=fault.severity, priority=sla_policies.priority_for_fault(session=session, fault=fault),
        status=TicketStatusValue.NEW, required_skill=skill, fault_active=cleared_at is None,
        fault_cleared_at=cleared_at, raise_count=1, first_raised_at=fault.occurred_at,
        last_raised_at=fault.occurred_at, evidence=dict(fault.evidence), created_at=now, updated_at=now, version=1,
        resolution_note="",
    )  # fmt: skip
    ticket = session.scalars(
        insert_entity(session, Ticket).values(**values)
        .on_conflict_do_nothing(index_elements=list(key), index_where=text(OPEN_TICKET_WHERE))
        .returning(Ticket)
    ).one_or_none()
    if ticket is None:
        winner = find_open(session=session, **key)
        if winner is None:
            raise RuntimeError(f"no ticket was inserted for {key} and none is open")
        log.debug("another worker opened ticket %s for %s first; raising it again", winner.number, key)
        return winner, False
    data = _fault_data(fault)
    if cleared_at is not None:
        data["fault_cleared_at"] = cleared_at.isoformat()
    _record(session, ticket, event_type=EventType.CREATED, now=now, source=Source.DEVICE, note=ticket.title,
            to_status=TicketStatusValue.NEW, data=data)
    _changed(session, ticket, now=now, bump=False,
             note="the device reports the fault cleared" if cleared_at is not None else "")
    return ticket, True


def fault_out_of_order(*, session: Session, ticket: Ticket, fault: FaultEvent, now: datetime) -> None:
    """Keep an event older than the fault's newest known one in the trail; change nothing else."""
    data = {**_fault_data(fault), "state": fault.state.value}
    _record(session, ticket, event_type=EventType.OUT_OF_ORDER, now=now, source=Source.DEVICE, data=data,
            note=f"{fault.state.value} event older than the newest known one: recorded, not applied")


def fault_again(*, session: Session, ticket: Ticket, fault: FaultEvent, now: datetime) -> bool:
    """A raise (count it) or an update (new evidence) for a fault that already has an open ticket.

    False, and only recorded, when the event is older than the ticket's recorded clear.
    """
    if ticket.fault_cleared_at is not None and fault.occurred_at < ticket.fault_cleared_at:
        fault_out_of_order(session=session, ticket=ticket, fault=fault, now=now)
        return False
    raised = fault.state is FaultState.RAISED
    if raised:
        ticket.raise_count += 1
        ticket.last_raised_at = max(ticket.last_raised_at, fault.occurred_at)
    ticket.fault_active = True
    ticket.fault_cleared_at = None
    ticket.evidence = dict(fault.evidence)
    timers.cancel(session=session, keys=[recovery_key(ticket.id)])  # active again: no recovery
    _record(session, ticket, event_type=EventType.FAULT_RAISED_AGAIN if raised else EventType.FAULT_UPDATED, now=now,
            source=Source.DEVICE, data=_fault_data(fault))
    _changed(session, ticket, now=now)
    return True


def fault_cleared(*, session: Session, ticket: Ticket, fault: FaultEvent, now: datetime,
                  recovery_grace: timedelta | None = None) -> bool:
    """Record the recovery on the ticket; a store task resolves itself. False if the clear is stale.

    A repair nobody has accepted yet resolves as "recovered" once the fault has stayed clear
    for `recovery_grace` (a timer; None: never); after acceptance the technician decides."""
    if fault.occurred_at < ticket.last_raised_at:
        fault_out_of_order(session=session, ticket=ticket, fault=fault, now=now)
        return False  # older than the latest raise: the fault is active again
    ticket.fault_active = False
    ticket.fault_cleared_at = fault.occurred_at
    data = _fault_data(fault)
    note = "the device reports the fault cleared"
    recovers = (recovery_grace is not None and ticket.ticket_class is TicketClass.REPAIR
                and ticket.status in policy.RECOVERABLE_STATUSES)
    if recovers:
        assert recovery_grace is not None
        due = max(fault.occurred_at + recovery_grace, now)
        data["recovers_at"] = due.isoformat()
        note += f"; nobody has accepted the job, so it resolves as recovered at {due:%H:%M} UTC unless raised again"
        timers.schedule(session=session, key=recovery_key(ticket.id), kind=RECOVERY_KIND, due_at=due, now=now,
                        ticket_id=ticket.id, data={"grace_s": recovery_grace.total_seconds()})
    _record(session, ticket, event_type=EventType.FAULT_CLEARED, now=now, source=Source.DEVICE, data=data)
    _changed(session, ticket, now=now, note=note)
    recover_store_task(session=session, ticket=ticket, now=now)
    return True


# --- the fault's ticket over time: recovery, reopening, store-task deadlines --------------------
RECOVERY_KIND = "ticket.recovery"
TASK_DEADLINE_KIND = "ticket.task_deadline"


def recovery_key(ticket_id: int) -> str:
    return f"ticket:{ticket_id}:recovery"


def task_deadline_key(ticket_id: int) -> str:
    return f"ticket:{ticket_id}:task_deadline"


def recover_if_still_clear(*, session: Session, ticket: Ticket, grace: timedelta, now: datetime) -> bool:
    """The recovery timer: resolve an unaccepted repair whose fault stayed clear for `grace`."""
    cleared_at = ticket.fault_cleared_at
    if (ticket.ticket_class is not TicketClass.REPAIR or ticket.status not in policy.RECOVERABLE_STATUSES
            or ticket.fault_active or cleared_at is None or cleared_at + grace > now):
        return False  # accepted meanwhile, raised again, or not clear for long enough yet
    minutes = round(grace.total_seconds() / 60)
    perform(session=session, ticket=ticket, action=Action.RECOVER, now=now, source=Source.TIMER,
            resolution_code="recovered",
            note=f"the fault cleared at {cleared_at:%H:%M} UTC and stayed clear for {minutes} min before anyone "
                 "accepted the job", data={"fault_cleared_at": cleared_at.isoformat(), "grace_min": minutes})
    return True


def reopen_for_fault(*, session: Session, fault: FaultEvent, window: timedelta, now: datetime) -> Ticket | None:
    """The fault's last ticket reopened (status new), when it was resolved or closed no longer than
    `window` before this raise; None when a new ticket is due. The caller dispatches it again."""
    if window <= timedelta(0):
        return None
    latest = latest_for_fault(session=session, store_id=fault.store_id, device_id=fault.device_id,
                              fault_code=fault.fault_code)
    if latest is None or latest.status not in policy.REOPENABLE_STATUSES:
        return None
    resolved = resolved_at(session=session, ticket_id=latest.id)
    if resolved is None or fault.occurred_at > resolved + window:
        return None
    if fault.state is FaultState.RAISED:
        latest.raise_count += 1
        latest.last_raised_at = max(latest.last_raised_at, fault.occurred_at)
    latest.fault_active = True
    latest.fault_cleared_at = None
    latest.evidence = dict(fault.evidence)
    latest.resolution_code = None
    minutes = max(0, round((fault.occurred_at - resolved).total_seconds() / 60))
    perform(session=session, ticket=latest, action=Action.REOPEN, now=now, source=Source.DEVICE,
            note=f"the fault was raised again {minutes} min after the ticket was resolved",
            data={**_fault_data(fault), "resolved_at": resolved.isoformat(), "window_min": window.total_seconds() / 60})
    return latest


def schedule_task_deadline(*, session: Session, ticket: Ticket, deadline: timedelta, since: datetime,
                           now: datetime) -> None:
    """A store task not done `deadline` after `since` becomes a repair and is dispatched."""
    timers.schedule(session=session, key=task_deadline_key(ticket.id), kind=TASK_DEADLINE_KIND,
                    due_at=since + deadline, now=now, ticket_id=ticket.id,
                    data={"deadline_s": deadline.total_seconds()})


def escalate_task_if_overdue(*, session: Session, ticket: Ticket, deadline: timedelta, now: datetime) -> bool:
    """The store-task deadline: a task still new with its fault active becomes a repair and is dispatched."""
    if ticket.ticket_class is not TicketClass.STORE_TASK or ticket.status is not TicketStatusValue.NEW \
            or not ticket.fault_active:
        return False  # done by the store, or the fault cleared
    minutes = round(deadline.total_seconds() / 60)
    ticket.ticket_class = TicketClass.REPAIR
    event = _record(session, ticket, event_type=EventType.TASK_ESCALATED, now=now, source=Source.TIMER,
                    note=f"store task not done within {minutes} min: dispatched to a technician",
                    data={"deadline_min": minutes})
    _changed(session, ticket, now=now, note=f"store task not done within {minutes} min: a technician is sent")
    notifications.for_ticket_event(session=session, ticket=ticket, event=event, now=now)
    auto_assign(session=session, ticket=ticket, now=now)
    return True


def recover_store_task(*, session: Session, ticket: Ticket, now: datetime) -> None:
    """A store task nobody has started resolves itself once its fault has cleared."""
    if (ticket.ticket_class is TicketClass.STORE_TASK and ticket.status is TicketStatusValue.NEW
            and not ticket.fault_active):
        perform(session=session, ticket=ticket, action=Action.RECOVER, now=now, source=Source.DEVICE,
                note="the fault cleared by itself", resolution_code="recovered")


# --- transitions and dispatch -------------------------------------------------------------------
def perform(
    *, session: Session, ticket: Ticket, action: Action, now: datetime, source: Source, actor: str | None = None,
    note: str = "", client_at: datetime | None = None, eta: datetime | None = None,
    resolution_code: str | None = None, technician: Technician | None = None, data: dict[str, Any] | None = None,
    event_type: EventType | None = None,
) -> TicketEvent:  # fmt: skip
    """Apply one validated transition with its side effects, event and status message.

    `event_type` records it as something other than the action's own event (e.g. REASSIGNED).
    A parent cannot close while a child is open; its children follow it when it resolves or
    is cancelled (`_children_follow`)."""
    target = policy.next_status(ticket.ticket_class, ticket.status, action, resume_to=ticket.paused_from)
    if action is Action.CLOSE:
        still_open = children_of(session=session, ticket_id=ticket.id)
        if still_open:
            listed = ", ".join(f"{c.number} ({c.title})" for c in still_open)
            raise InvalidTransitionError(f"ticket {ticket.number} cannot close while its linked work is open: {listed}")
    previous = ticket.status
    data = dict(data or {})
    if action in (Action.AWAIT_PARTS, Action.HOLD):
        ticket.paused_from = previous
        data["paused_from"] = previous.value
    elif action is Action.RESUME or target in CLOSED_STATUSES:
        ticket.paused_from = None
    if action is Action.ASSIGN:
        if technician is None:
            raise ValueError("assign needs a technician")
        ticket.assignee = technician
        data["technician_id"] = technician.id
    elif action is Action.DECLINE:
        data["technician_id"] = sla.current_assignee_id(ticket)
        ticket.assignee = None
        ticket.eta = None
    elif action is Action.EN_ROUTE:
        ticket.eta = eta
        data["eta"] = eta.isoformat() if eta else None
    elif action in (Action.RESOLVE, Action.RECOVER):
        ticket.resolution_code = resolution_code
        ticket.resolution_note = note
    elif action is Action.REOPEN:
        ticket.resolution_note = ""
        if ticket.assignee is not None:
            data["previous_technician_id"] = ticket.assignee.id
        ticket.assignee = None  # dispatched again; the previous technician remains a candidate
        ticket.eta = None
    ticket.status = target
    event = _record(session, ticket, event_type=event_type or policy.EVENT_FOR_ACTION[action], now=now, source=source,
                    actor=actor, note=note, client_at=client_at, from_status=previous, to_status=target, data=data)
    _changed(session, ticket, now=now, note=note)
    notifications.for_ticket_event(session=session, ticket=ticket, event=event, now=now)
    if target in (TicketStatusValue.RESOLVED, TicketStatusValue.CANCELLED) and previous not in CLOSED_STATUSES:
        _children_follow(session, ticket, target, now)
    return event


# --- parents and children -----------------------------------------------------------------------
def record_created(*, session: Session, ticket: Ticket, now: datetime, source: Source, note: str,
                   data: dict[str, Any]) -> None:
    """The trail and status message of a ticket central opened itself (not from a fault event)."""
    event = _record(session, ticket, event_type=EventType.CREATED, now=now, source=source, note=note,
                    to_status=TicketStatusValue.NEW, data=data)
    _changed(session, ticket, now=now, bump=False, note=note)
    notifications.for_ticket_event(session=session, ticket=ticket, event=event, now=now)


def record_fault_change(*, session: Session, ticket: Ticket, now: datetime, event_type: EventType,
                        note: str) -> None:
    """A fault change of a ticket central derives (an incident's, from its children)."""
    _record(session, ticket, event_type=event_type, now=now, source=Source.SYSTEM, note=note)
    _changed(session, ticket, now=now, note=note)


def children_of(*, session: Session, ticket_id: int, open_only: bool = True,
                for_update: bool = True) -> Sequence[Ticket]:
    query = select(Ticket).where(Ticket.parent_id == ticket_id).order_by(Ticket.id)
    if open_only:
        query = query.where(Ticket.status.in_(OPEN_STATUSES))
    if for_update:
        query = query.with_for_update(of=Ticket).execution_options(populate_existing=True)
    return session.scalars(query).all()


def _children_follow(session: Session, parent: Ticket, target: TicketStatusValue, now: datetime) -> None:
    """An incident resolved: its children whose fault has cleared resolve with it, the others are
    released and dispatched on their own. Cancelled: incident children are released, the store
    work it spawned is cancelled. (A resolved repair's store tasks stay: the store still does them.)"""
    for child in children_of(session=session, ticket_id=parent.id):
        if child.link is Link.INCIDENT:
            if target is TicketStatusValue.RESOLVED and not child.fault_active \
                    and child.status in policy.RECOVERABLE_STATUSES:
                perform(session=session, ticket=child, action=Action.RECOVER, now=now, source=Source.SYSTEM,
                        resolution_code="resolved_with_incident",
                        note=f"resolved with incident {parent.number}; the fault had cleared")
            else:
                release(session=session, ticket=child, now=now,
                        why=f"incident {parent.number} is {target.value} and this fault is still open")
        elif child.link is Link.TASK and target is TicketStatusValue.CANCELLED:
            perform(session=session, ticket=child, action=Action.CANCEL, now=now, source=Source.SYSTEM,
                    note=f"the repair {parent.number} was cancelled")


def attach(*, session: Session, child: Ticket, parent: Ticket, now: datetime, why: str) -> None:
    """Make `child` part of incident `parent`: not dispatched on its own (unassigned if nobody accepted it)."""
    child.parent_id, child.link = parent.id, Link.INCIDENT
    data = {"parent_id": parent.id, "parent_number": parent.number}
    if child.status is TicketStatusValue.ASSIGNED:
        data["technician_id"] = sla.current_assignee_id(child)
        child.assignee = None
    perform(session=session, ticket=child, action=Action.CORRELATE, now=now, source=Source.SYSTEM,
            note=f"part of incident {parent.number}: {why}", data=data)


def release(*, session: Session, ticket: Ticket, now: datetime, why: str) -> None:
    """Detach a child from its incident and dispatch it on its own (its SLA starts now)."""
    parent_id = ticket.parent_id
    ticket.parent_id, ticket.link = None, None
    event = _record(session, ticket, event_type=EventType.RELEASED, now=now, source=Source.SYSTEM, note=why,
                    data={"parent_id": parent_id})
    _changed(session, ticket, now=now, note=why)
    notifications.for_ticket_event(session=session, ticket=ticket, event=event, now=now)
    if ticket.ticket_class is TicketClass.REPAIR and ticket.status is TicketStatusValue.NEW:
        auto_assign(session=session, ticket=ticket, now=now)


@dataclass(frozen=True, slots=True)
class ChildTask:
    """A store task a work template prescribes for a repair."""

    code: str  # the child's fault code is `<parent's>.<code>`
    title: str
    description: str
    requires_record: bool
    template: str


def open_child_tasks(*, session: Session, parent: Ticket, tasks: Sequence[ChildTask], now: datetime,
                     check_open: bool = True) -> list[Ticket]:
    """Store tasks linked to `parent`, those not open already (`check_open` False: the caller knows
    none is, e.g. the parent is new); inserted together."""
    made: list[tuple[ChildTask, Ticket]] = []
    for task in tasks:
        key = {"store_id": parent.store_id, "device_id": parent.device_id,
               "fault_code": f"{parent.fault_code}.{task.code}"[:128]}
        if check_open and find_open(session=session, **key) is not None:
            continue
        child = Ticket(
            **key, device_model=parent.device_model, title=task.title[:200], location=parent.location,
            ticket_class=TicketClass.STORE_TASK, fault_class=parent.fault_class, severity=parent.severity,
            priority=parent.priority, status=TicketStatusValue.NEW, required_skill=None, fault_active=False,
            fault_cleared_at=None, raise_count=1, first_raised_at=parent.first_raised_at,
            last_raised_at=parent.last_raised_at, created_at=now, updated_at=now, version=1, resolution_note="",
            evidence={"template": task.template, "task": task.code, "requires_record": task.requires_record},
            parent_id=parent.id, link=Link.TASK,
        )  # fmt: skip
        child.sla_signature = sla.signature(child)  # a store task: no SLA timers to plan
        made.append((task, child))
    if not made:
        return []
    session.add_all([child for _, child in made])
    session.flush()  # one INSERT for all of them
    for task, child in made:
        _record(session, child, event_type=EventType.CREATED, now=now, source=Source.SYSTEM, note=task.description,
                to_status=TicketStatusValue.NEW, data={"parent_id": parent.id, "parent_number": parent.number,
                                                       "template": task.template})
        _changed(session, child, now=now, bump=False, note=f"linked to {parent.number}: {task.description}")
    return [child for _, child in made]


def excluded_technicians(*, session: Session, ticket_id: int) -> frozenset[int]:
    """Technicians who declined this ticket or let it sit unaccepted: never offered it again."""
    return frozenset(
        int(e.data[field]) for e in events_of(session=session, ticket_id=ticket_id)
        for field in ("technician_id", "from_technician_id")
        if (e.type, field) in ((EventType.DECLINED, "technician_id"), (EventType.REASSIGNED, "from_technician_id"))
        and e.data.get(field) is not None
    )  # fmt: skip


def _choose(session: Session, ticket: Ticket, excluded: frozenset[int]) -> tuple[Choice, Technician | None]:
    """The best technician for `ticket` (the row, as loaded with the others: no second read)."""
    loaded = technicians.with_load(session=session)
    choice = choose_technician(technicians.as_candidates(loaded), skill=ticket.required_skill, exclude=excluded)
    if choice.technician is None:
        return choice, None
    chosen = choice.technician.technician_id
    return choice, next(technician for technician, _ in loaded if technician.id == chosen)


def auto_assign(*, session: Session, ticket: Ticket, now: datetime, fresh: bool = False) -> Choice:
    """Assign a repair to the best technician, or explain on the ticket why nobody was. `fresh`: the
    ticket was opened in this transaction, so nobody has declined it yet (saves reading its trail)."""
    excluded = frozenset() if fresh else excluded_technicians(session=session, ticket_id=ticket.id)
    choice, technician = _choose(session, ticket, excluded)
    if technician is None:
        _record(session, ticket, event_type=EventType.NOT_ASSIGNED, now=now, source=Source.SYSTEM, note=choice.reason)
        return choice
    perform(session=session, ticket=ticket, action=Action.ASSIGN, now=now, source=Source.SYSTEM,
            note=choice.reason, technician=technician)
    return choice


def reassign_unaccepted(*, session: Session, ticket: Ticket, now: datetime, waited_min: int) -> Choice:
    """An assigned repair nobody accepted in time: to the next candidate (never the same person), or
    back to the dispatch queue (status new) when there is none. Recorded as REASSIGNED."""
    previous = ticket.assignee
    assert previous is not None, "only an assigned ticket can be reassigned"
    excluded = excluded_technicians(session=session, ticket_id=ticket.id) | {previous.id}
    choice, technician = _choose(session, ticket, excluded)
    why = f"{previous.display_name} did not accept within {waited_min} min"
    data = {"from_technician_id": previous.id, "waited_min": waited_min}
    if technician is None:
        perform(session=session, ticket=ticket, action=Action.DECLINE, now=now, source=Source.TIMER,
                event_type=EventType.REASSIGNED, note=f"{why}; back to the dispatch queue ({choice.reason})",
                data=data)
        _record(session, ticket, event_type=EventType.NOT_ASSIGNED, now=now, source=Source.TIMER, note=choice.reason)
        return choice
    perform(session=session, ticket=ticket, action=Action.ASSIGN, now=now, source=Source.TIMER,
            event_type=EventType.REASSIGNED, note=f"{why}; {choice.reason}", technician=technician, data=data)
    return choice


def change_priority(
    *, session: Session, ticket_id: int, priority: int, user: User, now: datetime, reason: str,
    expected_version: int | None = None,
) -> Ticket:  # fmt: skip
    """A dispatcher or supervisor re-prioritises an open ticket; the SLA keeps its original start."""
    if user.role not in policy.PRIORITY_CHANGERS:
        raise PermissionDeniedError(f"a {user.role.value.replace('_', ' ')} may not change a ticket's priority")
    ticket = get(session=session, ticket_id=ticket_id, for_update=True)
    if expected_version is not None and expected_version != ticket.version:
        raise VersionConflictError(f"ticket {ticket.number} is at version {ticket.version}, not {expected_version}")
    if not ticket.is_open:
        raise InvalidTransitionError(f"ticket {ticket.number} is {ticket.status.value}: only open tickets are "
                                     "re-prioritised")
    if priority == ticket.priority:
        return ticket
    previous, ticket.priority = ticket.priority, priority
    _record(session, ticket, event_type=EventType.PRIORITY_CHANGED, now=now, source=Source.API, actor=user.username,
            note=reason, data={"from": previous, "to": priority})
    _changed(session, ticket, now=now, note=f"priority {previous} -> {priority}: {reason}")
    return ticket


def act(
    *, session: Session, ticket_id: int, action: Action, user: User, now: datetime, note: str = "",
    client_at: datetime | None = None, eta: datetime | None = None, resolution_code: str | None = None,
    technician_id: int | None = None, expected_version: int | None = None, source: Source = Source.API,
) -> Ticket:  # fmt: skip
    """A person's action on a ticket (the REST API): authorise, validate, apply, re-dispatch.

    `source` HANDHELD (technicians only) makes the SLA judge the action by its `client_at`."""
    if source not in (Source.API, Source.HANDHELD):
        raise ValueError(f"a person acts through the api or the handheld, not {source.value!r}")
    if source is Source.HANDHELD and user.role is not Role.TECHNICIAN:
        raise PermissionDeniedError("only technicians act from the handheld; send source \"api\" (or none)")
    ticket = get(session=session, ticket_id=ticket_id, for_update=True)
    if user.role is Role.STORE_STAFF and ticket.store_id != user.store_id:
        raise PermissionDeniedError("store staff act only on their own store's tickets")
    me = technicians.for_user(session=session, user_id=user.id)
    is_assignee = me is not None and ticket.assignee_id == me.id
    policy.authorize(action, user.role, ticket_class=ticket.ticket_class, is_assignee=is_assignee)
    if action is Action.RESOLVE and ticket.evidence.get("requires_record") and not note.strip():
        raise InvalidTransitionError(f"ticket {ticket.number} ({ticket.title}) needs a record to be done: say in "
                                     "the note what was discarded, or 'nothing discarded'")
    if expected_version is not None and expected_version != ticket.version:
        raise VersionConflictError(f"ticket {ticket.number} is at version {ticket.version}, not {expected_version}")
    technician = None
    if action is Action.ASSIGN:
        technician = session.get(Technician, technician_id) if technician_id is not None else None
        if technician is None:
            raise NotFoundError(f"no technician {technician_id}")
        if not technician.active:
            raise PermissionDeniedError(f"technician {technician.display_name} is not active")
    perform(session=session, ticket=ticket, action=action, now=now, source=source, actor=user.username,
            note=note, client_at=client_at, eta=eta, resolution_code=resolution_code, technician=technician)
    if action is Action.DECLINE:
        auto_assign(session=session, ticket=ticket, now=now)
    return ticket
