"""HTTP bodies of the SLA API (sla domain, boundary models). Validation names the field."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

from central.sla.calendar import Calendar, CalendarError
from central.sla.models import Criticality, SlaTarget
from protocols.mqtt.messages import FaultClass, Severity, TicketStatusValue

Priority = Annotated[int, Field(ge=1, le=5)]
Minutes = Annotated[int, Field(ge=1, le=366 * 24 * 60)]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


# --- priority rules -----------------------------------------------------------------------------
class PriorityRuleBody(_Body):
    fault_class: FaultClass
    severity: Severity
    criticality: Criticality
    priority: Priority


class PriorityRulesBody(_Body):
    """The whole table: one rule per (fault class, severity, criticality); every (fault class,
    severity) needs its "normal" rule, which other criticalities without a rule fall back to."""

    rules: Annotated[list[PriorityRuleBody], Field(min_length=1, max_length=1000)]

    @model_validator(mode="after")
    def _complete(self) -> Self:
        seen: set[tuple[FaultClass, Severity, Criticality]] = set()
        for i, rule in enumerate(self.rules):
            key = (rule.fault_class, rule.severity, rule.criticality)
            if key in seen:
                raise ValueError(f"rules[{i}]: a second rule for {rule.fault_class.value}/{rule.severity.value}/"
                                 f"{rule.criticality.value}; keep one")
            seen.add(key)
        missing = [f"{f.value}/{s.value}" for f in FaultClass for s in Severity
                   if (f, s, Criticality.NORMAL) not in seen]
        if missing:
            raise ValueError(f"rules: no \"normal\" criticality rule for {', '.join(missing[:5])}"
                             + (f" and {len(missing) - 5} more" if len(missing) > 5 else ""))
        return self


class PriorityRuleRead(PriorityRuleBody):
    model_config = ConfigDict(from_attributes=True)


class CriticalityBody(_Body):
    criticality: Criticality


class DeviceCriticalityRead(BaseModel):
    store_id: str
    device_id: str
    criticality: Criticality


# --- SLA policies -------------------------------------------------------------------------------
class SlaPolicyBody(_Body):
    response_min: Minutes
    arrival_min: Minutes
    resolution_min: Minutes
    business_hours: bool
    accept_window_min: Minutes
    escalation_interval_min: Minutes

    @model_validator(mode="after")
    def _ordered(self) -> Self:
        if self.arrival_min < self.response_min:
            raise ValueError("arrival_min: must not be shorter than response_min (arriving implies accepting)")
        if self.resolution_min < self.arrival_min:
            raise ValueError("resolution_min: must not be shorter than arrival_min")
        return self


class SlaPolicyRead(SlaPolicyBody):
    model_config = ConfigDict(from_attributes=True, extra="ignore")

    fault_class: FaultClass
    priority: int
    updated_at: datetime | None
    updated_by: str | None


# --- calendars ----------------------------------------------------------------------------------
class CalendarBody(_Body):
    timezone: Annotated[str, Field(min_length=1, max_length=64, examples=["Europe/Berlin"])]
    hours: dict[str, list[list[str]]] = Field(
        examples=[{"mon": [["07:00", "22:00"]], "sat": [["08:00", "20:00"]]}],
        description="opening windows per day (mon..sun) in the store's local time; a missing day is closed",
    )
    holidays: Annotated[list[str], Field(max_length=400)] = []

    @model_validator(mode="after")
    def _valid(self) -> Self:
        try:
            Calendar.parse(self.timezone, self.hours, self.holidays)
        except CalendarError as exc:
            raise ValueError(str(exc)) from None
        return self


class CalendarRead(CalendarBody):
    model_config = ConfigDict(from_attributes=True, extra="ignore")

    store_id: str
    always_open: bool = False  # True: the store has no calendar, every SLA runs 24/7
    updated_at: datetime | None = None
    updated_by: str | None = None


# --- a ticket's SLA -----------------------------------------------------------------------------
class PriorityBody(_Body):
    priority: Priority
    reason: Annotated[str, Field(min_length=1, max_length=500)]
    expected_version: Annotated[int, Field(ge=1)] | None = None


class EscalationRead(BaseModel):
    level: int
    at: datetime
    recipients: list[str]


class TargetRead(BaseModel):
    target: SlaTarget
    allowed_min: float
    due_at: datetime | None  # None while paused
    met_at: datetime | None
    elapsed_min: float
    remaining_min: float  # negative once breached
    paused: bool
    breached: bool
    stopped: bool  # the ticket closed without meeting it
    warnings: list[str]  # stages fired: warn50, warn75
    escalations: list[EscalationRead]


class TicketSlaRead(BaseModel):
    ticket_id: int
    priority: int
    fault_class: FaultClass
    business_hours: bool  # only the store calendar's open hours count
    calendar_timezone: str | None  # None: 24/7
    started_at: datetime
    paused: bool
    paused_from: TicketStatusValue | None
    computed_at: datetime
    targets: list[TargetRead]
