"""Priority rules, SLA policies, store calendars and asset criticality (sla domain service).

Reads and admin edits of the SLA's data. Never commits: the request owns the transaction.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from central.errors import NotFoundError
from central.sla.calendar import Calendar
from central.sla.models import Criticality, PriorityRule, SlaPolicy, StoreCalendar
from central.stores.models import Device
from central.tickets import policy as ticket_policy
from protocols.mqtt.messages import FaultClass, FaultEvent, Severity

# used only if a policy row is missing (the migration seeds all of them):
# priority -> (response, arrival, resolution, accept window, escalation interval) in minutes
FALLBACK_TARGETS = {1: (15, 120, 240, 15, 30), 2: (30, 240, 480, 15, 60), 3: (60, 480, 1440, 60, 120),
                    4: (240, 1440, 2880, 240, 240), 5: (480, 2880, 7200, 480, 480)}


# --- priority -----------------------------------------------------------------------------------
def priority_for(*, session: Session, fault_class: FaultClass, severity: Severity, criticality: Criticality) -> int:
    """The rule for this (class, severity, criticality); else its "normal" rule; else the built-in table."""
    # read once per session: an ingest batch opens many tickets of the same few classes
    cache: dict[tuple[FaultClass, Severity], dict[Criticality, int]] = session.info.setdefault("priority_rules", {})
    by_criticality = cache.get((fault_class, severity))
    if by_criticality is None:
        rows = session.scalars(select(PriorityRule).where(PriorityRule.fault_class == fault_class,
                                                          PriorityRule.severity == severity)).all()
        by_criticality = cache[(fault_class, severity)] = {row.criticality: row.priority for row in rows}
    if criticality in by_criticality:
        return by_criticality[criticality]
    if Criticality.NORMAL in by_criticality:
        return by_criticality[Criticality.NORMAL]
    return ticket_policy.priority_for(fault_class, severity)


def criticality_of(*, session: Session, store_id: str, device_id: str) -> Criticality:
    device = session.get(Device, (store_id, device_id))
    return device.criticality if device is not None else Criticality.NORMAL


def priority_for_fault(*, session: Session, fault: FaultEvent) -> int:
    """The priority of a new ticket for `fault`, from the rules and its device's criticality."""
    criticality = criticality_of(session=session, store_id=fault.store_id, device_id=fault.device_id)
    return priority_for(session=session, fault_class=fault.fault_class, severity=fault.severity,
                        criticality=criticality)


def list_rules(*, session: Session) -> Sequence[PriorityRule]:
    return session.scalars(select(PriorityRule).order_by(PriorityRule.fault_class, PriorityRule.severity,
                                                         PriorityRule.criticality)).all()


def replace_rules(*, session: Session, rules: Iterable[tuple[FaultClass, Severity, Criticality, int]]) -> int:
    """Replace the whole rule table (the caller validated it); the number of rules now."""
    session.execute(delete(PriorityRule))
    session.info.pop("priority_rules", None)
    rows = [PriorityRule(fault_class=f, severity=s, criticality=c, priority=p) for f, s, c, p in rules]
    session.add_all(rows)
    session.flush()
    return len(rows)


def set_criticality(*, session: Session, store_id: str, device_id: str, criticality: Criticality) -> Device:
    device = session.get(Device, (store_id, device_id))
    if device is None:
        raise NotFoundError(f"no device {device_id!r} in store {store_id!r}")
    device.criticality = criticality
    session.flush()
    return device


# --- SLA policies -------------------------------------------------------------------------------
def policy_for(*, session: Session, fault_class: FaultClass, priority: int, cached: bool = False) -> SlaPolicy:
    """The policy of (fault class, priority); `cached`: read once per session (the timer loop's
    batches and an ingest transaction look the same few up again and again)."""
    cache: dict[tuple[FaultClass, int], SlaPolicy] = session.info.setdefault("sla_policies", {})
    if cached and (fault_class, priority) in cache:
        return cache[(fault_class, priority)]
    row = session.get(SlaPolicy, (fault_class, priority))
    if row is not None:
        cache[(fault_class, priority)] = row
        return row
    response, arrival, resolution, window, interval = FALLBACK_TARGETS[min(max(priority, 1), 5)]
    return SlaPolicy(fault_class=fault_class, priority=priority, response_min=response, arrival_min=arrival,
                     resolution_min=resolution, business_hours=fault_class is not FaultClass.FOOD_SAFETY
                     and priority >= 3, accept_window_min=window, escalation_interval_min=interval)


def list_policies(*, session: Session) -> Sequence[SlaPolicy]:
    return session.scalars(select(SlaPolicy).order_by(SlaPolicy.fault_class, SlaPolicy.priority)).all()


def update_policy(
    *, session: Session, fault_class: FaultClass, priority: int, response_min: int, arrival_min: int,
    resolution_min: int, business_hours: bool, accept_window_min: int, escalation_interval_min: int,
    by: str, now: datetime,
) -> SlaPolicy:  # fmt: skip
    row = session.get(SlaPolicy, (fault_class, priority))
    if row is None:
        row = SlaPolicy(fault_class=fault_class, priority=priority)
        session.add(row)
    row.response_min, row.arrival_min, row.resolution_min = response_min, arrival_min, resolution_min
    row.business_hours, row.accept_window_min = business_hours, accept_window_min
    row.escalation_interval_min, row.updated_by, row.updated_at = escalation_interval_min, by, now
    session.flush()
    return row


# --- store calendars ----------------------------------------------------------------------------
def calendar_row(*, session: Session, store_id: str) -> StoreCalendar | None:
    return session.get(StoreCalendar, store_id)


def calendar_for(*, session: Session, store_id: str) -> Calendar | None:
    """The store's calendar, or None (24/7) when it has none."""
    row = calendar_row(session=session, store_id=store_id)
    if row is None:
        return None
    return Calendar.parse(row.timezone, row.hours, row.holidays)


def put_calendar(
    *, session: Session, store_id: str, timezone: str, hours: dict[str, list[list[str]]], holidays: list[str],
    by: str, now: datetime,
) -> StoreCalendar:  # fmt: skip
    Calendar.parse(timezone, hours, holidays)  # CalendarError names the field
    row = calendar_row(session=session, store_id=store_id)
    if row is None:
        row = StoreCalendar(store_id=store_id)
        session.add(row)
    row.timezone, row.hours, row.holidays, row.updated_by, row.updated_at = timezone, hours, holidays, by, now
    session.flush()
    return row


def delete_calendar(*, session: Session, store_id: str) -> bool:
    result = session.execute(delete(StoreCalendar).where(StoreCalendar.store_id == store_id))
    return bool(getattr(result, "rowcount", 0))
