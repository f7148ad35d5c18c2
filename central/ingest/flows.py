"""Applying one store message (ingest domain, cross-domain flow). Never commits.

The caller owns the transaction: the ledger row, the store/device upserts, the fault
state, the ticket change and the outbound status commit together or not at all.

Fault events may arrive out of order. Each one is first ordered against the newest known
event of its fault (`central.faults`); an older one goes to the ticket's history only,
except a raise older than a recorded clear that no ticket covers yet: that fault did
happen, so it gets its ticket, opened already cleared.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from sqlalchemy.orm import Session

from central.faults import service as faults
from central.faults.service import Ordering
from central.ingest import store_watch
from central.store_config import service as store_config
from central.stores import service as stores
from central.tickets import links, policy
from central.tickets import service as tickets
from central.tickets.models import Ticket
from device_profiles import ProfileRegistry
from protocols.mqtt.messages import (
    ConfigAck,
    FaultEvent,
    FaultState,
    Message,
    StoreHealth,
    TelemetryBatch,
    TicketClass,
)


class Outcome(StrEnum):
    ACCEPTED = "accepted"
    DUPLICATE = "duplicate"
    REJECTED = "rejected"


@dataclass(frozen=True, slots=True)
class Applied:
    outcome: Outcome
    kind: str
    created_ticket_id: int | None = None
    ticket_class: TicketClass | None = None
    in_order: bool = True  # False: a fault event older than the newest known one of its fault


def kind_of(profiles: ProfileRegistry, device_model: str) -> str | None:
    """The profile kind of a device model (None for a model central has no profile of).

    The edge reports correlated silence under two models of no profile: ``bus`` (a whole
    bus silent: the line, its converter or the controllers' supply) and ``store`` (the
    store's power); see docs/mqtt-contract.md."""
    if device_model in profiles:
        return profiles.get(device_model).kind
    return policy.CORRELATED_KINDS.get(device_model)


def apply_message(*, session: Session, message: Message, now: datetime, profiles: ProfileRegistry,
                  haccp_interval_s: int = stores.telemetry.DEFAULT_INTERVAL_S,
                  lifecycle: policy.Lifecycle = policy.Lifecycle()) -> Applied:
    """Apply one message. The caller has stored it in the inbox and claimed its row
    (`central.ingest.inbox`): duplicates never get here, and the row is marked processed in
    this same transaction."""
    kind = str(getattr(message, "kind", "unknown"))
    stores.touch_store(session=session, store_id=message.store_id, now=now)
    if isinstance(message, FaultEvent):
        return apply_fault(session=session, fault=message, now=now, profiles=profiles, lifecycle=lifecycle)
    if isinstance(message, TelemetryBatch):
        stores.apply_telemetry(session=session, batch=message, now=now, profiles=profiles,
                               haccp_interval_s=haccp_interval_s)
    elif isinstance(message, StoreHealth):
        kinds = {d.device_model: kind_of(profiles, d.device_model) for d in message.devices}
        if stores.apply_health(session=session, health=message, now=now, kinds=kinds):
            store_watch.on_health(session=session, health=message, now=now, lifecycle=lifecycle,
                                  apply_fault=apply_fault)
    elif isinstance(message, ConfigAck):
        store_config.record_ack(session=session, ack=message, now=now)
    else:
        raise TypeError(f"central does not consume {type(message).__name__}")
    return Applied(Outcome.ACCEPTED, kind)


def task_deadline(profiles: ProfileRegistry, fault: FaultEvent) -> timedelta | None:
    """How long the store has to do a store task before a technician is sent (the profile's
    `task_deadline_s` for this fault code); None: never dispatched."""
    if fault.ticket_class is not TicketClass.STORE_TASK or fault.device_model not in profiles:
        return None
    for rule in profiles.get(fault.device_model).rules:
        if rule.code == fault.fault_code and rule.task_deadline_s is not None:
            return timedelta(seconds=rule.task_deadline_s)
    return None


def apply_fault(*, session: Session, fault: FaultEvent, now: datetime, profiles: ProfileRegistry,
                lifecycle: policy.Lifecycle = policy.Lifecycle()) -> Applied:
    device_kind = kind_of(profiles, fault.device_model)
    row = {"device_id": fault.device_id, "model": fault.device_model, "kind": device_kind,
           "location": fault.location, "last_seen": now}
    update = ["model", "kind", "last_seen"] + (["location"] if fault.location else [])
    stores.upsert_devices(session=session, store_id=fault.store_id, rows=[row], update=update)
    ordering = faults.record_event(session=session, fault=fault, now=now)
    if fault.state is FaultState.CLEARED:
        return _apply_clear(session, fault, now, ordering, lifecycle)
    skill = policy.skill_for_kind(device_kind)
    deadline = task_deadline(profiles, fault)
    if not ordering.in_order:
        return _apply_late_raise(session, fault, now, ordering, skill, deadline, lifecycle, device_kind)
    existing = tickets.find_open(session=session, **_key(fault))
    if existing is None:
        reopened = tickets.reopen_for_fault(session=session, fault=fault, window=lifecycle.reopen_window, now=now)
        if reopened is not None:
            _dispatch(session, reopened, now, deadline, lifecycle, device_kind, since=fault.occurred_at, new=False)
            return Applied(Outcome.ACCEPTED, fault.kind)
        ticket, created = tickets.open_for_fault(session=session, fault=fault, skill=skill, now=now, none_open=True)
    else:
        ticket, created = existing, False
    if not created:
        in_order = tickets.fault_again(session=session, ticket=ticket, fault=fault, now=now)
        links.refresh_incident(session=session, child=ticket, now=now)
        return Applied(Outcome.ACCEPTED, fault.kind, in_order=in_order)
    return _opened(session, fault, ticket, now, deadline, lifecycle, device_kind, in_order=True)


def _key(fault: FaultEvent) -> dict[str, str]:
    return {"store_id": fault.store_id, "device_id": fault.device_id, "fault_code": fault.fault_code}


def _apply_clear(session: Session, fault: FaultEvent, now: datetime, ordering: Ordering,
                 lifecycle: policy.Lifecycle) -> Applied:
    """Clear the fault's ticket; with no ticket yet, the recorded state is all (a late raise reads it)."""
    key = _key(fault)
    ticket = tickets.find_open(session=session, **key) or tickets.latest_with_active_fault(session=session, **key)
    in_order = ordering.in_order
    if ticket is not None and in_order:
        in_order = tickets.fault_cleared(session=session, ticket=ticket, fault=fault, now=now,
                                         recovery_grace=lifecycle.recovery_grace)
        links.refresh_incident(session=session, child=ticket, now=now)
    elif ticket is not None:
        tickets.fault_out_of_order(session=session, ticket=ticket, fault=fault, now=now)
    return Applied(Outcome.ACCEPTED, fault.kind, in_order=in_order)


def _apply_late_raise(session: Session, fault: FaultEvent, now: datetime, ordering: Ordering,
                      skill: str | None, deadline: timedelta | None, lifecycle: policy.Lifecycle,
                      device_kind: str | None) -> Applied:
    """A raise or update older than the fault's newest known event: history, or a ticket opened cleared."""
    key = _key(fault)
    ticket = tickets.find_open(session=session, **key)
    if ticket is None:
        latest = tickets.latest_for_fault(session=session, **key)
        # a closed ticket covers the event unless its fault had cleared before the event happened
        if latest is not None and (latest.fault_cleared_at is None or fault.occurred_at <= latest.fault_cleared_at):
            ticket = latest
    if ticket is not None:
        tickets.fault_out_of_order(session=session, ticket=ticket, fault=fault, now=now)
        return Applied(Outcome.ACCEPTED, fault.kind, in_order=False)
    known = ordering.latest
    cleared_at = known.occurred_at if known.state is FaultState.CLEARED else None
    ticket, created = tickets.open_for_fault(session=session, fault=fault, skill=skill, now=now,
                                             cleared_at=cleared_at)
    if not created:  # another worker opened one meanwhile
        tickets.fault_out_of_order(session=session, ticket=ticket, fault=fault, now=now)
        return Applied(Outcome.ACCEPTED, fault.kind, in_order=False)
    return _opened(session, fault, ticket, now, deadline, lifecycle, device_kind, in_order=False)


def _dispatch(session: Session, ticket: Ticket, now: datetime, deadline: timedelta | None,
              lifecycle: policy.Lifecycle, device_kind: str | None, *, since: datetime, new: bool = True) -> None:
    """A new or reopened ticket: a repair to a technician, unless an incident takes it (with the
    store work its templates prescribe); a store task to the store's list, with its deadline, or
    resolved at once when its fault has already cleared."""
    if ticket.ticket_class is TicketClass.REPAIR:
        if links.correlate(session=session, ticket=ticket, now=now, lifecycle=lifecycle) is None:
            tickets.auto_assign(session=session, ticket=ticket, now=now, fresh=new)
        links.spawn_tasks(session=session, ticket=ticket, device_kind=device_kind, now=now, new=new)
        return
    tickets.recover_store_task(session=session, ticket=ticket, now=now)
    if deadline is not None and ticket.is_open:
        tickets.schedule_task_deadline(session=session, ticket=ticket, deadline=deadline, since=since, now=now)


def _opened(session: Session, fault: FaultEvent, ticket: Ticket, now: datetime, deadline: timedelta | None,
            lifecycle: policy.Lifecycle, device_kind: str | None, *, in_order: bool) -> Applied:
    _dispatch(session, ticket, now, deadline, lifecycle, device_kind, since=ticket.first_raised_at)
    return Applied(Outcome.ACCEPTED, fault.kind, created_ticket_id=ticket.id, ticket_class=ticket.ticket_class,
                   in_order=in_order)
