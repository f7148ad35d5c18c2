"""Correlation and linked work (tickets domain service). Never commits.

Called by ingest for every new or reopened repair, in its transaction:

- `correlate`: a store-wide incident takes the repair as a child instead of a dispatch of
  its own. The incident is the edge's own correlated fault (a store power loss: every fault
  of the store while it lasts, and for `correlation_window` after, central's store_offline
  included; a silent bus: the
  `device_offline` faults the edge reported before it saw the whole bus go; a store offline
  at central: the faults that happened while it was away, replayed on its return), or one
  central opens when `correlation_min_devices` devices of a store get new repairs within
  `correlation_window` (`multiple_faults` on the store's pseudo-device `store`).
- `spawn_tasks`: the store work the matching `work_templates` prescribe (a refrigerated case
  over temperature: move the goods, food-safety check with a discard record), as store tasks
  linked to the repair. The repair cannot close while one is open.

Messages of one store are serialised by its store row (`stores.touch_store`), so two workers
never correlate the same store's faults at once.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import and_, or_, select
from sqlalchemy.orm import Session

from central.stores import service as stores
from central.tickets import service as tickets
from central.tickets.models import OPEN_STATUSES, EventType, Link, Source, Ticket, WorkTemplate
from central.tickets.policy import RECOVERABLE_STATUSES, Lifecycle
from protocols.mqtt.messages import TicketClass
from protocols.mqtt.messages import TicketStatusValue as S

POWER_MODEL, BUS_MODEL = "store", "bus"  # the edge's correlated faults (docs/mqtt-contract.md)
GATEWAY_MODEL = "gateway"  # central's store_offline (central.ingest.store_watch)
INCIDENT_MODELS = frozenset({POWER_MODEL, BUS_MODEL, GATEWAY_MODEL})
STORE_DEVICE, MULTIPLE = "store", "multiple_faults"  # central's own incident


def _neighbours(session: Session, ticket: Ticket, lifecycle: Lifecycle,
                recent: bool = True) -> tuple[list[Ticket], list[Ticket]]:
    """The store's open incidents, and (`recent`) its other undispatched repairs raised within the
    correlation window (when central correlates by count): one query, the rows locked, in id order."""
    incidents = and_(Ticket.device_model.in_(INCIDENT_MODELS), Ticket.status.in_(OPEN_STATUSES))
    wanted = incidents
    if recent and lifecycle.correlation_min_devices:
        wanted = or_(incidents, and_(Ticket.device_model.not_in(INCIDENT_MODELS), Ticket.parent_id.is_(None),
                                     Ticket.status.in_(RECOVERABLE_STATUSES),
                                     Ticket.first_raised_at >= ticket.first_raised_at - lifecycle.correlation_window))
    rows = session.scalars(
        select(Ticket).where(Ticket.store_id == ticket.store_id, Ticket.ticket_class == TicketClass.REPAIR,
                             Ticket.id != ticket.id, wanted)
        .order_by(Ticket.id).with_for_update(of=Ticket)
    ).all()
    found: tuple[list[Ticket], list[Ticket]] = ([], [])
    for row in rows:
        found[0 if row.device_model in INCIDENT_MODELS else 1].append(row)
    return found


def _covers(incident: Ticket, child: Ticket, lifecycle: Lifecycle) -> bool:
    """Whether `incident` explains `child`'s fault."""
    raised = child.first_raised_at
    if incident.fault_code == MULTIPLE:  # one trade's faults: a case and a lane are two visits
        return (incident.required_skill == child.required_skill
                and raised <= incident.last_raised_at + lifecycle.correlation_window)
    if incident.device_model == BUS_MODEL and child.fault_code != "device_offline":
        return False  # other faults during a bus outage come from other buses: their own repairs
    if raised < incident.first_raised_at - lifecycle.correlation_window:
        return False
    cleared = incident.fault_cleared_at
    return incident.fault_active or (cleared is not None and raised <= cleared + lifecycle.correlation_window)


def _is_power_loss(incident: Ticket) -> bool:
    return incident.device_model == POWER_MODEL and incident.fault_code != MULTIPLE


def correlate(*, session: Session, ticket: Ticket, now: datetime, lifecycle: Lifecycle) -> Ticket | None:
    """Attach a new (or reopened) repair to the incident that explains it; the incident, or None
    when it stands alone and is dispatched as usual. Incidents stand alone, except a store gone
    offline during (or just after) its power loss: the power loss explains that too."""
    if ticket.ticket_class is not TicketClass.REPAIR or ticket.status not in RECOVERABLE_STATUSES:
        return None
    if ticket.device_model in INCIDENT_MODELS:
        if ticket.device_model != GATEWAY_MODEL:
            return None
        powers = [i for i in _neighbours(session, ticket, lifecycle, recent=False)[0] if _is_power_loss(i)]
        return next((_join(session, ticket, i, now) for i in powers if _covers(i, ticket, lifecycle)), None)
    incidents, recent = _neighbours(session, ticket, lifecycle)
    for incident in incidents:
        if _covers(incident, ticket, lifecycle):
            _join(session, ticket, incident, now)
            return incident
    already = next((i for i in incidents if i.fault_code == MULTIPLE), None)
    return _many_devices(session, ticket, recent, now, lifecycle, already)


def _join(session: Session, child: Ticket, incident: Ticket, now: datetime) -> Ticket:
    why = (incident.title.lower() if incident.fault_code != MULTIPLE
           else "one of several devices of the store faulting within minutes of each other")
    tickets.attach(session=session, child=child, parent=incident, now=now, why=why)
    if incident.fault_code == MULTIPLE:
        incident.last_raised_at = max(incident.last_raised_at, child.last_raised_at)
        incident.raise_count += 1
        incident.fault_active = True
        incident.fault_cleared_at = None
        devices = sorted({*incident.evidence.get("devices", []), child.device_id})
        incident.evidence = {**incident.evidence, "devices": devices, "faults": int(incident.raise_count)}
    return incident


def _many_devices(session: Session, ticket: Ticket, recent: list[Ticket], now: datetime, lifecycle: Lifecycle,
                  already: Ticket | None) -> Ticket | None:
    """Central's own incident when enough devices of the store need the same trade within the window.

    A store has one open `multiple_faults` incident at a time (the open-ticket index): a new burst
    of its trade joins it; another trade's repairs are dispatched on their own meanwhile."""
    members = [*(t for t in recent if t.required_skill == ticket.required_skill), ticket]
    devices = sorted({t.device_id for t in members})
    if lifecycle.correlation_min_devices == 0 or len(devices) < lifecycle.correlation_min_devices:
        return None
    if already is not None:
        if already.required_skill != ticket.required_skill:
            return None
        for member in members:
            _join(session, member, already, now)
        return already
    lead = min(members, key=lambda t: (t.priority, t.id))  # the most urgent fault sets the incident's terms
    stores.upsert_devices(session=session, store_id=ticket.store_id,
                          rows=[{"device_id": STORE_DEVICE, "model": POWER_MODEL, "kind": "store", "location": "",
                                 "last_seen": now}], update=["last_seen"])
    minutes = round(lifecycle.correlation_window.total_seconds() / 60)
    incident = Ticket(
        store_id=ticket.store_id, device_id=STORE_DEVICE, fault_code=MULTIPLE, device_model=POWER_MODEL,
        title=f"{len(devices)} devices faulted within {minutes} min", location="", ticket_class=TicketClass.REPAIR,
        fault_class=lead.fault_class, severity=lead.severity, priority=lead.priority, status=S.NEW,
        required_skill=lead.required_skill, fault_active=True, fault_cleared_at=None, raise_count=len(members),
        first_raised_at=min(t.first_raised_at for t in members),
        last_raised_at=max(t.last_raised_at for t in members),
        evidence={"devices": devices, "faults": len(members)}, created_at=now, updated_at=now, version=1,
        resolution_note="",
    )  # fmt: skip
    session.add(incident)
    session.flush()
    tickets.record_created(session=session, ticket=incident, now=now, source=Source.SYSTEM,
                           note=f"{incident.title}: one incident instead of a dispatch each",
                           data={"devices": devices, "tickets": [t.id for t in members]})
    for member in members:
        tickets.attach(session=session, child=member, parent=incident, now=now,
                       why="one of several devices of the store faulting within minutes of each other")
    tickets.auto_assign(session=session, ticket=incident, now=now, fresh=True)
    return incident


def refresh_incident(*, session: Session, child: Ticket, now: datetime) -> None:
    """A child's fault changed: central's own incident is active while any child's fault is."""
    if child.link is not Link.INCIDENT or child.parent_id is None:
        return
    incident = tickets.get(session=session, ticket_id=child.parent_id, for_update=True)
    if incident.fault_code != MULTIPLE or not incident.is_open:
        return
    children = tickets.children_of(session=session, ticket_id=incident.id)
    active = any(c.fault_active for c in children if c.link is Link.INCIDENT)
    if active == incident.fault_active:
        return
    if active:
        incident.fault_active, incident.fault_cleared_at = True, None
        tickets.record_fault_change(session=session, ticket=incident, now=now, event_type=EventType.FAULT_RAISED_AGAIN,
                                    note=f"{child.device_id} faulted again")
    else:
        cleared = max((c.fault_cleared_at for c in children if c.fault_cleared_at is not None), default=now)
        incident.fault_active, incident.fault_cleared_at = False, cleared
        tickets.record_fault_change(session=session, ticket=incident, now=now, event_type=EventType.FAULT_CLEARED,
                                    note="every device of the incident reports its fault cleared")


def matching_templates(*, session: Session, ticket: Ticket, device_kind: str | None) -> list[WorkTemplate]:
    cached: list[WorkTemplate] | None = session.info.get("work_templates")
    if cached is None:  # read once per session: an ingest batch opens many repairs
        cached = session.info["work_templates"] = list(session.scalars(
            select(WorkTemplate).where(WorkTemplate.enabled.is_(True)).order_by(WorkTemplate.id)))
    candidates = cached
    return [t for t in candidates
            if (t.fault_class is None or t.fault_class is ticket.fault_class)
            and (t.device_kind is None or t.device_kind == device_kind)
            and (not t.fault_codes or ticket.fault_code in t.fault_codes)]


def spawn_tasks(*, session: Session, ticket: Ticket, device_kind: str | None, now: datetime,
                new: bool = False) -> list[Ticket]:
    """The store tasks the matching templates prescribe for this repair (those not open already;
    `new`: the repair was created in this transaction, so it has none)."""
    if ticket.ticket_class is not TicketClass.REPAIR:
        return []
    wanted = [tickets.ChildTask(code=str(task["code"]), title=str(task["title"]),
                                description=str(task.get("description", "")),
                                requires_record=bool(task.get("requires_record")), template=template.name)
              for template in matching_templates(session=session, ticket=ticket, device_kind=device_kind)
              for task in template.tasks]
    return tickets.open_child_tasks(session=session, parent=ticket, tasks=wanted, now=now, check_open=not new)

