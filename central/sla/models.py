"""Priority rules, SLA policies and store calendars (sla domain: ORM models).

All three are data an admin (or facilities, for calendars) edits through the API; the
migration seeds the defaults.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import CheckConstraint, ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from central.db import Base, StrEnumType
from protocols.mqtt.messages import FaultClass, Severity


class Criticality(StrEnum):
    """How much an asset matters (a case full of goods, the only checkout lane): raises priority."""

    CRITICAL = "critical"
    HIGH = "high"
    NORMAL = "normal"
    LOW = "low"


class SlaTarget(StrEnum):
    RESPONSE = "response"  # accepted by a technician
    ARRIVAL = "arrival"  # technician on site
    RESOLUTION = "resolution"  # resolved


class PriorityRule(Base):
    """(fault class, severity, asset criticality) -> priority 1 (most urgent) .. 5."""

    __tablename__ = "priority_rules"
    __table_args__ = (CheckConstraint("priority BETWEEN 1 AND 5", name="priority_range"),)

    fault_class: Mapped[FaultClass] = mapped_column(StrEnumType(FaultClass, 16), primary_key=True)
    severity: Mapped[Severity] = mapped_column(StrEnumType(Severity, 16), primary_key=True)
    criticality: Mapped[Criticality] = mapped_column(StrEnumType(Criticality, 16), primary_key=True)
    priority: Mapped[int]


class SlaPolicy(Base):
    """The targets of one (fault class, priority), in minutes of counted time."""

    __tablename__ = "sla_policies"

    fault_class: Mapped[FaultClass] = mapped_column(StrEnumType(FaultClass, 16), primary_key=True)
    priority: Mapped[int] = mapped_column(primary_key=True)
    response_min: Mapped[int]
    arrival_min: Mapped[int]
    resolution_min: Mapped[int]
    business_hours: Mapped[bool]  # True: only the store calendar's open hours count; False: 24/7
    accept_window_min: Mapped[int]  # assigned but not accepted this long: reassigned to the next candidate
    escalation_interval_min: Mapped[int]  # between escalation levels after a breach
    updated_at: Mapped[datetime | None]
    updated_by: Mapped[str | None] = mapped_column(String(64))

    def target_min(self, target: SlaTarget) -> int:
        return {SlaTarget.RESPONSE: self.response_min, SlaTarget.ARRIVAL: self.arrival_min,
                SlaTarget.RESOLUTION: self.resolution_min}[target]


class StoreCalendar(Base):
    """A store's opening hours (local time) and holidays; a store without one is open 24/7."""

    __tablename__ = "store_calendars"

    store_id: Mapped[str] = mapped_column(ForeignKey("stores.id", ondelete="CASCADE"), primary_key=True)
    timezone: Mapped[str] = mapped_column(String(64))  # an IANA name, e.g. Europe/Berlin
    hours: Mapped[dict[str, Any]]  # {"mon": [["07:00", "22:00"]], ...}; a missing day is closed
    holidays: Mapped[list[str]]  # ISO dates, closed all day
    updated_at: Mapped[datetime]
    updated_by: Mapped[str] = mapped_column(String(64))
