"""SLA figures from a ticket's status history (sla domain, pure: no database, no clock).

The clock of every target starts when the ticket was created and counts only:
- open time of the store calendar (business-hours policies; `None` calendar: 24/7),
- outside pauses (awaiting parts, on hold).
Response is met at the first `accepted`, arrival at the first `on_site`, resolution at the
`resolved` the ticket still stands on. A handheld's action counts at the time it happened
(its client time) when that is plausible: not after the server received it and not before
the previous step; otherwise at the server time. A priority change only changes the
targets; the start stays where it was.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from central.sla.calendar import Calendar, add_counted, counted
from central.sla.models import SlaTarget
from central.tickets.models import CLOSED_STATUSES, Source
from central.tickets.policy import PAUSED_STATUSES
from protocols.mqtt.messages import TicketStatusValue as S

_ZERO = timedelta(0)


class Stage(StrEnum):
    WARN50 = "warn50"
    WARN75 = "warn75"
    BREACH = "breach"


STAGE_FRACTION = {Stage.WARN50: (1, 2), Stage.WARN75: (3, 4), Stage.BREACH: (1, 1)}
MET_BY = {SlaTarget.RESPONSE: S.ACCEPTED, SlaTarget.ARRIVAL: S.ON_SITE, SlaTarget.RESOLUTION: S.RESOLVED}


@dataclass(frozen=True, slots=True)
class Change:
    """One status change of the trail, as recorded."""

    to_status: S
    at: datetime  # server time
    client_at: datetime | None = None
    source: Source = Source.API


@dataclass(frozen=True, slots=True)
class Step:
    to_status: S
    at: datetime  # the time it counts at
    from_client: bool  # True: the handheld's own time was used


@dataclass(frozen=True, slots=True)
class Targets:
    """Minutes per target and whether only the store calendar's open hours count."""

    response_min: int
    arrival_min: int
    resolution_min: int
    business_hours: bool

    def minutes(self, target: SlaTarget) -> int:
        return {SlaTarget.RESPONSE: self.response_min, SlaTarget.ARRIVAL: self.arrival_min,
                SlaTarget.RESOLUTION: self.resolution_min}[target]


@dataclass(frozen=True, slots=True)
class TargetFigures:
    target: SlaTarget
    allowed: timedelta
    due_at: datetime | None  # None while paused: it moves by the length of the pause
    met_at: datetime | None
    elapsed: timedelta  # counted time until met, the ticket closed, or now
    remaining: timedelta  # allowed - elapsed; negative once breached
    paused: bool
    breached: bool
    stopped: bool  # the ticket closed without meeting it
    stage_due: dict[Stage, datetime | None]

    @property
    def running(self) -> bool:
        return self.met_at is None and not self.stopped and not self.paused


@dataclass(frozen=True, slots=True)
class Figures:
    start: datetime
    steps: tuple[Step, ...]
    paused: bool
    closed_at: datetime | None
    targets: tuple[TargetFigures, ...]

    def of(self, target: SlaTarget) -> TargetFigures:
        return next(t for t in self.targets if t.target is target)


def effective_steps(changes: Sequence[Change], start: datetime) -> tuple[Step, ...]:
    """Each change at the time it counts: the handheld's time when plausible, else the server's."""
    steps: list[Step] = []
    previous = start
    for change in changes:
        at, from_client = max(change.at, previous), False
        if (change.source is Source.HANDHELD and change.client_at is not None
                and previous <= change.client_at <= change.at):
            at, from_client = change.client_at, True
        steps.append(Step(change.to_status, at, from_client))
        previous = at
    return tuple(steps)


def _segments(start: datetime, steps: Sequence[Step]) -> list[tuple[datetime, datetime | None]]:
    """The intervals the clock runs in (not paused); the last is open-ended unless paused now."""
    segments: list[tuple[datetime, datetime | None]] = []
    running_since: datetime | None = start
    for step in steps:
        if step.to_status in PAUSED_STATUSES and running_since is not None:
            segments.append((running_since, step.at))
            running_since = None
        elif step.to_status not in PAUSED_STATUSES and running_since is None:
            running_since = step.at
    if running_since is not None:
        segments.append((running_since, None))
    return segments


def _elapsed(calendar: Calendar | None, segments: Sequence[tuple[datetime, datetime | None]],
             until: datetime) -> timedelta:
    total = _ZERO
    for begin, end in segments:
        finish = until if end is None else min(end, until)
        total += counted(calendar, begin, finish)
    return total


def _moment(calendar: Calendar | None, segments: Sequence[tuple[datetime, datetime | None]],
            amount: timedelta) -> datetime | None:
    """When `amount` of counted time is reached along the segments; None if a pause lasts past it."""
    left = amount
    for begin, end in segments:
        if end is None:
            return add_counted(calendar, begin, left)
        available = counted(calendar, begin, end)
        if available >= left:
            return add_counted(calendar, begin, left)
        left -= available
    return None


def _met_at(target: SlaTarget, steps: Sequence[Step]) -> datetime | None:
    wanted = MET_BY[target]
    if target is SlaTarget.RESOLUTION:  # the resolution the ticket still stands on (a reopen undoes it)
        met = None
        for step in steps:
            if step.to_status is wanted:
                met = step.at
            elif step.to_status not in (S.CLOSED,):
                met = None
        return met
    return next((step.at for step in steps if step.to_status is wanted), None)


def compute(*, start: datetime, changes: Sequence[Change], targets: Targets, calendar: Calendar | None,
            now: datetime) -> Figures:
    """Every target's figures at `now`; `calendar` applies only when `targets.business_hours`."""
    cal = calendar if targets.business_hours else None
    steps = effective_steps(changes, start)
    segments = _segments(start, steps)
    paused = bool(steps) and steps[-1].to_status in PAUSED_STATUSES
    closed_at = steps[-1].at if steps and steps[-1].to_status in CLOSED_STATUSES else None
    out: list[TargetFigures] = []
    for target in SlaTarget:
        allowed = timedelta(minutes=targets.minutes(target))
        met_at = _met_at(target, steps)
        stopped = met_at is None and closed_at is not None
        until = met_at or closed_at or now
        elapsed = _elapsed(cal, segments, until)
        stage_due = {stage: _moment(cal, segments, allowed * num / den) for stage, (num, den) in STAGE_FRACTION.items()}
        breached = elapsed > allowed if met_at is not None else elapsed >= allowed
        out.append(TargetFigures(
            target=target, allowed=allowed, due_at=stage_due[Stage.BREACH], met_at=met_at, elapsed=elapsed,
            remaining=allowed - elapsed, paused=paused and met_at is None and not stopped, breached=breached,
            stopped=stopped, stage_due=stage_due,
        ))
    return Figures(start=start, steps=steps, paused=paused, closed_at=closed_at, targets=tuple(out))
