"""HTTP bodies of the tickets API (tickets domain, boundary models)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from central.tickets.models import EventType, Link, Source, Ticket, TicketEvent
from protocols.mqtt.messages import FaultClass, Severity, TicketClass, TicketStatusValue

Note = Annotated[str, Field(max_length=2000)]


class AssigneeRead(BaseModel):
    id: int
    username: str
    display_name: str


class TicketRead(BaseModel):
    id: int
    number: str
    store_id: str
    device_id: str
    device_model: str
    fault_code: str
    title: str
    location: str
    ticket_class: TicketClass
    fault_class: FaultClass
    severity: Severity
    priority: int
    status: TicketStatusValue
    required_skill: str | None
    assignee: AssigneeRead | None
    fault_active: bool
    raise_count: int
    first_raised_at: datetime
    last_raised_at: datetime
    fault_cleared_at: datetime | None
    evidence: dict[str, Any]
    eta: datetime | None
    resolution_code: str | None
    resolution_note: str
    created_at: datetime
    updated_at: datetime
    version: int
    parent_id: int | None = None  # the incident or repair this ticket hangs off
    link: Link | None = None  # how: "incident" (a correlated fault) or "task" (linked store work)


class EventRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    at: datetime
    client_at: datetime | None
    type: EventType
    from_status: TicketStatusValue | None
    to_status: TicketStatusValue | None
    actor: str | None
    source: Source
    note: str
    data: dict[str, Any]


class TicketDetail(TicketRead):
    store_name: str
    store_online: bool
    device_online: bool | None
    events: list[EventRead]
    children: list[TicketRead] = Field(default_factory=list)  # its linked store tasks or correlated faults


def ticket_read(ticket: Ticket) -> TicketRead:
    return TicketRead(**_fields(ticket))


def ticket_detail(
    ticket: Ticket, events: list[TicketEvent], *, store_name: str, store_online: bool, device_online: bool | None,
    children: list[Ticket] | None = None,
) -> TicketDetail:
    return TicketDetail(**_fields(ticket), store_name=store_name, store_online=store_online,
                        device_online=device_online, events=[EventRead.model_validate(e) for e in events],
                        children=[ticket_read(c) for c in children or []])


def _fields(ticket: Ticket) -> dict[str, Any]:
    names = TicketRead.model_fields.keys() - {"assignee", "number"}
    fields = {name: getattr(ticket, name) for name in names}
    fields["number"] = ticket.number
    technician = ticket.assignee
    fields["assignee"] = (
        AssigneeRead(id=technician.id, username=technician.user.username, display_name=technician.user.display_name)
        if technician else None
    )
    return fields


class ActionBody(BaseModel):
    """Common to every action; `client_time` is when the handheld did it (it may replay later)."""

    model_config = ConfigDict(extra="forbid")

    client_time: AwareDatetime | None = None
    note: Note = ""
    expected_version: Annotated[int, Field(ge=1)] | None = None  # 409 if the ticket moved on meanwhile
    # "handheld" (technicians only): the SLA judges the action by client_time, e.g. when synced later
    source: Literal[Source.API, Source.HANDHELD] = Source.API


class DeclineBody(ActionBody):
    reason: Annotated[str, Field(min_length=1, max_length=500)]


class EnRouteBody(ActionBody):
    eta: AwareDatetime | None = None


class ResolveBody(ActionBody):
    resolution_code: Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,63}$")]


class CancelBody(ActionBody):
    reason: Annotated[str, Field(min_length=1, max_length=500)]


class AssignBody(ActionBody):
    technician_id: int


class HoldBody(ActionBody):
    reason: Annotated[str, Field(min_length=1, max_length=500)]  # e.g. "no access until the store opens"


class AwaitPartsBody(ActionBody):
    part: Annotated[str, Field(min_length=1, max_length=200)]  # what is on order
