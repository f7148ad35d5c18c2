"""The tickets domain's timers (tickets layer): recovery grace and store-task deadlines.

Registered with the timer loop by `central.app.timer_registry`. Each handler locks the
ticket, re-checks the condition it was scheduled for (the ticket may have moved on since)
and acts through `central.tickets.service`, in the timer pass's transaction.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from central.tickets import service
from central.tickets.models import Ticket
from central.timers.models import Timer
from central.timers.service import TimerRegistry


def register_timers(registry: TimerRegistry) -> None:
    registry.register(service.RECOVERY_KIND, on_recovery)
    registry.register(service.TASK_DEADLINE_KIND, on_task_deadline)


def _locked(session: Session, timer: Timer) -> Ticket | None:
    if timer.ticket_id is None:
        raise ValueError(f"ticket timer {timer.key} has no ticket")
    ticket = session.scalar(select(Ticket).where(Ticket.id == timer.ticket_id).with_for_update(of=Ticket)
                            .execution_options(populate_existing=True))
    return ticket if ticket is not None and ticket.is_open else None


def on_recovery(session: Session, timer: Timer, now: datetime) -> None:
    ticket = _locked(session, timer)
    if ticket is not None:
        service.recover_if_still_clear(session=session, ticket=ticket,
                                       grace=timedelta(seconds=float(timer.data["grace_s"])), now=now)


def on_task_deadline(session: Session, timer: Timer, now: datetime) -> None:
    ticket = _locked(session, timer)
    if ticket is not None:
        service.escalate_task_if_overdue(session=session, ticket=ticket,
                                         deadline=timedelta(seconds=float(timer.data["deadline_s"])), now=now)
