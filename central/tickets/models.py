"""Tickets and their event trail (tickets domain: ORM models).

One OPEN ticket per (store, device, fault code) is enforced by a unique partial index, so
two workers racing on the same fault cannot both create one.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from sqlalchemy import JSON, ForeignKey, ForeignKeyConstraint, Index, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from central.db import Base, StrEnumType
from protocols.mqtt.messages import FaultClass, Severity, TicketClass, TicketStatusValue

if TYPE_CHECKING:
    from central.technicians.models import Technician

CLOSED_STATUSES = (TicketStatusValue.RESOLVED, TicketStatusValue.CLOSED, TicketStatusValue.CANCELLED)
OPEN_STATUSES = tuple(s for s in TicketStatusValue if s not in CLOSED_STATUSES)
ACTIVE_WORK_STATUSES = (  # counted as a technician's load
    TicketStatusValue.ASSIGNED,
    TicketStatusValue.ACCEPTED,
    TicketStatusValue.EN_ROUTE,
    TicketStatusValue.ON_SITE,
)
OPEN_TICKET_WHERE = "status NOT IN ({})".format(", ".join(f"'{s.value}'" for s in CLOSED_STATUSES))


class EventType(StrEnum):
    CREATED = "created"
    ASSIGNED = "assigned"
    NOT_ASSIGNED = "not_assigned"  # auto-assignment found nobody; the note says why
    ACCEPTED = "accepted"
    DECLINED = "declined"
    EN_ROUTE = "en_route"
    ON_SITE = "on_site"
    RESOLVED = "resolved"
    CLOSED = "closed"
    CANCELLED = "cancelled"
    FAULT_RAISED_AGAIN = "fault_raised_again"
    FAULT_UPDATED = "fault_updated"
    FAULT_CLEARED = "fault_cleared"
    OUT_OF_ORDER = "out_of_order"  # a fault event older than the newest known one: history only
    AWAITING_PARTS = "awaiting_parts"  # SLA clock paused
    HELD = "held"  # on hold (store access, waiting on the store): SLA clock paused
    RESUMED = "resumed"  # back to the status it was paused from
    PRIORITY_CHANGED = "priority_changed"  # by a person; the SLA start stays the original one
    SLA_WARNING = "sla_warning"  # 50% / 75% of an SLA target used (data: target, stage)
    ESCALATED = "escalated"  # an SLA target breached (data: target, level, recipients)
    REASSIGNED = "reassigned"  # not accepted within its window: moved to the next candidate
    REOPENED = "reopened"  # raised again within the reopen window of its resolution: dispatched again
    TASK_ESCALATED = "task_escalated"  # a store task not done by its deadline: now a repair, dispatched
    CORRELATED = "correlated"  # attached to a store-wide incident (data: parent): not dispatched on its own
    RELEASED = "released"  # its incident ended with this fault still active: dispatched on its own


class Link(StrEnum):
    """How a child ticket hangs off its parent (`Ticket.parent_id`)."""

    INCIDENT = "incident"  # a device fault correlated under a store-wide incident: not dispatched on its own
    TASK = "task"  # store work a template spawned with a repair: the parent cannot close while it is open


class Source(StrEnum):
    DEVICE = "device"
    API = "api"
    TIMER = "timer"
    HANDHELD = "handheld"  # a technician's handheld; its client time is when the action happened
    SYSTEM = "system"


class Ticket(Base):
    __tablename__ = "tickets"
    __table_args__ = (
        ForeignKeyConstraint(["store_id", "device_id"], ["devices.store_id", "devices.device_id"]),
        Index(
            "uq_tickets_open_fault",
            "store_id",
            "device_id",
            "fault_code",
            unique=True,
            sqlite_where=text(OPEN_TICKET_WHERE),
            postgresql_where=text(OPEN_TICKET_WHERE),
        ),
        Index("ix_tickets_status_priority", "status", "priority"),
        Index("ix_tickets_store_device_fault", "store_id", "device_id", "fault_code"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    store_id: Mapped[str] = mapped_column(ForeignKey("stores.id"))
    device_id: Mapped[str] = mapped_column(String(128))
    fault_code: Mapped[str] = mapped_column(String(128))
    device_model: Mapped[str] = mapped_column(String(128))
    title: Mapped[str] = mapped_column(String(200))
    location: Mapped[str] = mapped_column(String(200), default="")
    ticket_class: Mapped[TicketClass] = mapped_column(StrEnumType(TicketClass, 16))
    fault_class: Mapped[FaultClass] = mapped_column(StrEnumType(FaultClass, 16))
    severity: Mapped[Severity] = mapped_column(StrEnumType(Severity, 16))
    priority: Mapped[int]
    status: Mapped[TicketStatusValue] = mapped_column(StrEnumType(TicketStatusValue, 16))
    required_skill: Mapped[str | None] = mapped_column(String(40))
    assignee_id: Mapped[int | None] = mapped_column(ForeignKey("technicians.id"), index=True)
    fault_active: Mapped[bool] = mapped_column(default=True)
    raise_count: Mapped[int] = mapped_column(default=1)
    first_raised_at: Mapped[datetime]
    last_raised_at: Mapped[datetime]
    fault_cleared_at: Mapped[datetime | None]
    evidence: Mapped[dict[str, Any]]
    eta: Mapped[datetime | None]
    resolution_code: Mapped[str | None] = mapped_column(String(64))
    resolution_note: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    version: Mapped[int] = mapped_column(default=1)  # +1 on every change; the store keeps the highest
    paused_from: Mapped[TicketStatusValue | None] = mapped_column(StrEnumType(TicketStatusValue, 16))  # resume target
    sla_signature: Mapped[str | None] = mapped_column(String(80))  # SLA timers were synced for this state
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("tickets.id", ondelete="SET NULL"), index=True)
    link: Mapped[Link | None] = mapped_column(StrEnumType(Link, 16))  # set with parent_id

    assignee: Mapped[Technician | None] = relationship(lazy="joined")
    events: Mapped[list[TicketEvent]] = relationship(
        back_populates="ticket", order_by="TicketEvent.id", lazy="raise", cascade="all, delete-orphan"
    )

    @property
    def number(self) -> str:
        return f"T-{self.id:06d}"

    @property
    def is_open(self) -> bool:
        return self.status in OPEN_STATUSES


class TicketEvent(Base):
    """One line of a ticket's audit trail: a status change or a fault/assignment event."""

    __tablename__ = "ticket_events"

    id: Mapped[int] = mapped_column(primary_key=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id", ondelete="CASCADE"), index=True)
    at: Mapped[datetime]  # server time
    client_at: Mapped[datetime | None]  # the handheld's time, when it sent one
    type: Mapped[EventType] = mapped_column(StrEnumType(EventType, 24))
    from_status: Mapped[TicketStatusValue | None] = mapped_column(StrEnumType(TicketStatusValue, 16))
    to_status: Mapped[TicketStatusValue | None] = mapped_column(StrEnumType(TicketStatusValue, 16))
    actor: Mapped[str | None] = mapped_column(String(64))  # username, or None for the device/system
    source: Mapped[Source] = mapped_column(StrEnumType(Source, 8))
    note: Mapped[str] = mapped_column(Text, default="")
    data: Mapped[dict[str, Any]]

    ticket: Mapped[Ticket] = relationship(back_populates="events")


class WorkTemplate(Base):
    """Linked work: the store tasks a repair of a matching fault spawns (rules as data).

    A template matches a new repair when every criterion it sets matches (None / [] = any):
    fault class, device kind, fault code."""

    __tablename__ = "work_templates"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(80), unique=True)
    description: Mapped[str] = mapped_column(Text)
    fault_class: Mapped[FaultClass | None] = mapped_column(StrEnumType(FaultClass, 16))
    device_kind: Mapped[str | None] = mapped_column(String(40))
    fault_codes: Mapped[list[str]]
    tasks: Mapped[list[dict[str, Any]]] = mapped_column(JSON)  # [{code, title, description}]
    enabled: Mapped[bool]
    updated_at: Mapped[datetime]
    updated_by: Mapped[str | None] = mapped_column(String(64))
