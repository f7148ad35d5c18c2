"""Which SLA timers a ticket should have right now (sla domain, pure).

Given the figures and what already fired (warnings, escalation levels), the set of pending
timers is a function of the ticket's state, so every change simply re-plans: timers of a
met, paused or closed target disappear, a resumed target gets its moved deadlines back.
"""

from __future__ import annotations

from collections.abc import Mapping, Set
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from central.sla.clock import Figures, Stage
from central.sla.models import SlaTarget

WARNING_KIND = "sla_warning"
BREACH_KIND = "sla_breach"
ESCALATION_KIND = "sla_escalation"
ACCEPT_KIND = "sla_accept_window"
SLA_KINDS = (WARNING_KIND, BREACH_KIND, ESCALATION_KIND, ACCEPT_KIND)
TOP_LEVEL = 3  # 1 assignee, 2 supervisor(s) of the region, 3 regional manager(s)


@dataclass(frozen=True, slots=True)
class PlannedTimer:
    key: str
    kind: str
    due_at: datetime
    data: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Assignment:
    """The current assignment: who, and the event (and server time) that made it."""

    technician_id: int
    event_id: int
    at: datetime


def key(ticket_id: int, target: SlaTarget | str, stage: str) -> str:
    return f"sla:{ticket_id}:{target}:{stage}"


def accept_key(ticket_id: int) -> str:
    return f"sla:{ticket_id}:accept"


def plan(
    *, ticket_id: int, figures: Figures, warned: Set[tuple[str, str]], escalated: Mapping[str, tuple[int, datetime]],
    escalation_interval: timedelta, assignment: Assignment | None, accept_window: timedelta, is_open: bool,
) -> list[PlannedTimer]:  # fmt: skip
    """The pending timers this ticket should have.

    `warned`: (target, stage) warnings already recorded; `escalated`: target -> (highest
    level reached, when); `assignment`: set only while the ticket waits to be accepted.
    """
    if not is_open:
        return []
    timers: list[PlannedTimer] = []
    for figure in figures.targets:
        if not figure.running:
            continue
        name = figure.target.value
        level, level_at = escalated.get(name, (0, figure.due_at))
        if level == 0 and not figure.breached:
            for stage in (Stage.WARN50, Stage.WARN75):
                due = figure.stage_due[stage]
                if (name, stage.value) not in warned and due is not None:
                    timers.append(PlannedTimer(key(ticket_id, name, stage), WARNING_KIND, due,
                                               {"target": name, "stage": stage.value}))
        if level == 0 and figure.due_at is not None:
            timers.append(PlannedTimer(key(ticket_id, name, Stage.BREACH), BREACH_KIND, figure.due_at,
                                       {"target": name, "level": 1}))
        elif 0 < level < TOP_LEVEL and level_at is not None:
            timers.append(PlannedTimer(key(ticket_id, name, f"esc{level + 1}"), ESCALATION_KIND,
                                       level_at + escalation_interval, {"target": name, "level": level + 1}))
    if assignment is not None:
        timers.append(PlannedTimer(accept_key(ticket_id), ACCEPT_KIND, assignment.at + accept_window,
                                   {"technician_id": assignment.technician_id, "event_id": assignment.event_id}))
    return timers
