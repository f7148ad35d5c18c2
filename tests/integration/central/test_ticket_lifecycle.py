"""A fault's ticket over time, on SQLite and PostgreSQL: recovery before anyone accepted the job,
reopening within the window, and store tasks dispatched when not done by their deadline."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select

from central.app import timer_registry
from central.clock import FakeClock
from central.db import Database
from central.ingest.processor import Ingestor
from central.metrics import Metrics
from central.sla import service as sla
from central.sla.models import SlaTarget
from central.tickets import service as tickets
from central.tickets.models import EventType, Source, Ticket
from central.tickets.policy import Action, Lifecycle
from central.timers import service as timers
from device_profiles import ProfileRegistry
from protocols.mqtt.messages import TicketClass
from protocols.mqtt.messages import TicketStatusValue as S
from tests.integration.central.support import T0, events, fault, send, statuses
from tests.integration.central.support import tickets as all_tickets

REGISTRY = timer_registry()
GRACE = timedelta(minutes=15)
WINDOW = timedelta(hours=24)


def at(minute: float):  # type: ignore[no-untyped-def]
    return T0 + timedelta(minutes=minute)


@pytest.fixture
def ingestor(db: Database, metrics: Metrics, clock: FakeClock, profiles: ProfileRegistry) -> Ingestor:
    return Ingestor(database=db, profiles=profiles, metrics=metrics, clock=clock,
                    lifecycle=Lifecycle(recovery_grace=GRACE, reopen_window=WINDOW))


def run(db: Database, minute: float) -> dict[str, int]:
    return timers.run_pass(database=db, registry=REGISTRY, now=at(minute)).fired


def ticket(db: Database, ticket_id: int) -> Ticket:
    with db.session() as session:
        return tickets.get(session=session, ticket_id=ticket_id)


def act(db: Database, ticket_id: int, action: Action, minute: float, **kwargs: Any) -> None:
    with db.session() as session, session.begin():
        row = tickets.get(session=session, ticket_id=ticket_id, for_update=True)
        tickets.perform(session=session, ticket=row, action=action, now=at(minute), source=Source.API, actor="test",
                        **kwargs)


def raise_at(ingestor: Ingestor, clock: FakeClock, minute: float, seq: int, state: str = "raised",
             **changes: Any) -> Any:
    clock.advance((at(minute) - clock.now()).total_seconds())
    return send(ingestor, fault(seq=seq, at=at(minute), state=state, **changes))


def event_types(db: Database, ticket_id: int) -> list[str]:
    return [e.type.value for e in events(db, ticket_id)]


def pending_kinds(db: Database, ticket_id: int) -> dict[str, Any]:
    with db.session() as session:
        return {t.kind: t.due_at for t in timers.pending_for(session=session, ticket_id=ticket_id)
                if t.kind.startswith("ticket.")}


# --- recovery -----------------------------------------------------------------------------------
def test_a_fault_that_clears_before_anyone_accepts_resolves_as_recovered_after_the_grace(
        db: Database, ingestor: Ingestor, clock: FakeClock) -> None:
    ticket_id = raise_at(ingestor, clock, 0, 1).created_ticket_id
    assert ticket(db, ticket_id).status is S.ASSIGNED  # auto-dispatched, not accepted
    raise_at(ingestor, clock, 2, 2, state="cleared")
    assert pending_kinds(db, ticket_id) == {tickets.RECOVERY_KIND: at(17)}
    assert "resolves as recovered at" in statuses(db, ticket_id)[-1].note

    assert run(db, 16.9).get(tickets.RECOVERY_KIND) is None  # not clear for 15 min yet
    assert ticket(db, ticket_id).status is S.ASSIGNED
    assert run(db, 17)[tickets.RECOVERY_KIND] == 1
    done = ticket(db, ticket_id)
    assert (done.status, done.resolution_code, done.fault_active) == (S.RESOLVED, "recovered", False)
    last = events(db, ticket_id)[-1]
    assert (last.type, last.source, last.from_status, last.to_status) == (
        EventType.RESOLVED, Source.TIMER, S.ASSIGNED, S.RESOLVED)
    assert last.data["grace_min"] == 15
    assert statuses(db, ticket_id)[-1].status is S.RESOLVED  # the store is told
    with db.session() as session:
        assert sla.evaluate(session=session, ticket=tickets.get(session=session, ticket_id=ticket_id),
                            now=at(30)).escalations == ()


def test_a_raise_within_the_grace_cancels_the_recovery(db: Database, ingestor: Ingestor, clock: FakeClock) -> None:
    ticket_id = raise_at(ingestor, clock, 0, 1).created_ticket_id
    raise_at(ingestor, clock, 2, 2, state="cleared")
    raise_at(ingestor, clock, 10, 3)
    assert pending_kinds(db, ticket_id) == {}
    run(db, 30)
    current = ticket(db, ticket_id)
    assert (current.status, current.fault_active, current.raise_count) == (S.ASSIGNED, True, 2)


def test_after_acceptance_a_recovery_is_recorded_and_the_technician_decides(
        db: Database, ingestor: Ingestor, clock: FakeClock) -> None:
    ticket_id = raise_at(ingestor, clock, 0, 1).created_ticket_id
    act(db, ticket_id, Action.ACCEPT, 1)
    raise_at(ingestor, clock, 2, 2, state="cleared")
    assert pending_kinds(db, ticket_id) == {}
    run(db, 60)
    current = ticket(db, ticket_id)
    assert (current.status, current.fault_active) == (S.ACCEPTED, False)
    assert event_types(db, ticket_id)[-1] == "fault_cleared"


def test_a_job_accepted_during_the_grace_is_not_recovered(db: Database, ingestor: Ingestor,
                                                          clock: FakeClock) -> None:
    ticket_id = raise_at(ingestor, clock, 0, 1).created_ticket_id
    raise_at(ingestor, clock, 2, 2, state="cleared")
    act(db, ticket_id, Action.ACCEPT, 5)
    assert run(db, 17)[tickets.RECOVERY_KIND] == 1  # fired, found the job accepted, did nothing
    assert ticket(db, ticket_id).status is S.ACCEPTED


def test_a_zero_grace_never_schedules_a_recovery_in_the_past(db: Database, metrics: Metrics, clock: FakeClock,
                                                             profiles: ProfileRegistry) -> None:
    eager = Ingestor(database=db, profiles=profiles, metrics=metrics, clock=clock,
                     lifecycle=Lifecycle(recovery_grace=timedelta(0), reopen_window=WINDOW))
    ticket_id = raise_at(eager, clock, 0, 1).created_ticket_id
    raise_at(eager, clock, 2, 2, state="cleared", )
    assert pending_kinds(db, ticket_id) == {tickets.RECOVERY_KIND: at(2)}
    run(db, 2)
    assert ticket(db, ticket_id).resolution_code == "recovered"


# --- reopening ----------------------------------------------------------------------------------
def _work_and_resolve(db: Database, ticket_id: int, minute: float) -> None:
    for step, action in enumerate((Action.ACCEPT, Action.EN_ROUTE, Action.ARRIVE)):
        act(db, ticket_id, action, minute + step)
    act(db, ticket_id, Action.RESOLVE, minute + 3, resolution_code="replaced_fan", note="fan replaced")


def test_a_raise_within_the_window_reopens_the_same_ticket_and_dispatches_it_again(
        db: Database, ingestor: Ingestor, clock: FakeClock) -> None:
    ticket_id = raise_at(ingestor, clock, 0, 1).created_ticket_id
    first_assignee = ticket(db, ticket_id).assignee_id
    _work_and_resolve(db, ticket_id, 10)  # resolved at minute 13
    raise_at(ingestor, clock, 20, 2, state="cleared")
    result = raise_at(ingestor, clock, 13 + 23 * 60, 3)  # 23 h after the resolution
    assert result.created_ticket_id is None
    assert [t.id for t in all_tickets(db)] == [ticket_id]
    reopened = ticket(db, ticket_id)
    assert (reopened.status, reopened.fault_active, reopened.raise_count) == (S.ASSIGNED, True, 2)
    assert (reopened.resolution_code, reopened.resolution_note) == (None, "")
    assert reopened.assignee_id is not None
    reopen = next(e for e in events(db, ticket_id) if e.type is EventType.REOPENED)
    assert (reopen.from_status, reopen.to_status, reopen.source) == (S.RESOLVED, S.NEW, Source.DEVICE)
    assert reopen.data["previous_technician_id"] == first_assignee
    assert "raised again 1380 min after" in reopen.note
    reassigned = statuses(db, ticket_id)[-1]  # reopened and dispatched again: one message to the store
    assert (reassigned.status, reassigned.fault_active) == (S.ASSIGNED, True)
    assert reassigned.note.startswith("the fault was raised again 1380 min after")
    with db.session() as session:  # the SLA clock restarts at the reopening
        figures = sla.evaluate(session=session, ticket=tickets.get(session=session, ticket_id=ticket_id),
                               now=at(13 + 23 * 60 + 1))
        assert figures.figures.of(SlaTarget.RESPONSE).elapsed == timedelta(minutes=1)


def test_a_closed_ticket_reopens_too(db: Database, ingestor: Ingestor, clock: FakeClock) -> None:
    ticket_id = raise_at(ingestor, clock, 0, 1).created_ticket_id
    _work_and_resolve(db, ticket_id, 10)
    act(db, ticket_id, Action.CLOSE, 30)
    raise_at(ingestor, clock, 40, 2, state="cleared")
    raise_at(ingestor, clock, 60, 3)
    assert [(t.id, t.status) for t in all_tickets(db)] == [(ticket_id, S.ASSIGNED)]


@pytest.mark.parametrize("case", ["after the window", "cancelled"])
def test_a_raise_after_the_window_or_of_a_cancelled_ticket_opens_a_new_one(
        db: Database, ingestor: Ingestor, clock: FakeClock, case: str) -> None:
    ticket_id = raise_at(ingestor, clock, 0, 1).created_ticket_id
    if case == "cancelled":
        act(db, ticket_id, Action.CANCEL, 5, note="false alarm")
        later = 30
    else:
        _work_and_resolve(db, ticket_id, 10)
        later = 13 + 24 * 60 + 1
    raise_at(ingestor, clock, later - 5, 2, state="cleared")
    result = raise_at(ingestor, clock, later, 3)
    assert result.created_ticket_id is not None and result.created_ticket_id != ticket_id
    assert ticket(db, ticket_id).status in (S.RESOLVED, S.CANCELLED)
    assert "reopened" not in event_types(db, ticket_id)


def test_a_recovered_ticket_reopens_when_the_fault_comes_back(db: Database, ingestor: Ingestor,
                                                              clock: FakeClock) -> None:
    ticket_id = raise_at(ingestor, clock, 0, 1).created_ticket_id
    raise_at(ingestor, clock, 2, 2, state="cleared")
    run(db, 17)
    assert ticket(db, ticket_id).resolution_code == "recovered"
    raise_at(ingestor, clock, 90, 3)
    assert [(t.id, t.status, t.raise_count) for t in all_tickets(db)] == [(ticket_id, S.ASSIGNED, 2)]


# --- store tasks with a deadline ----------------------------------------------------------------
DOOR = {"code": "door_open", "ticket_class": "store_task", "severity": "minor", "device": "case-07"}


def test_a_store_task_not_done_by_its_deadline_is_dispatched_as_a_repair(
        db: Database, ingestor: Ingestor, clock: FakeClock) -> None:
    ticket_id = raise_at(ingestor, clock, 0, 1, **DOOR).created_ticket_id  # dixell door_open: 30 min
    task = ticket(db, ticket_id)
    assert (task.ticket_class, task.status, task.assignee_id) == (TicketClass.STORE_TASK, S.NEW, None)
    assert pending_kinds(db, ticket_id) == {tickets.TASK_DEADLINE_KIND: at(30)}

    assert run(db, 29).get(tickets.TASK_DEADLINE_KIND) is None
    assert run(db, 30)[tickets.TASK_DEADLINE_KIND] == 1
    repair = ticket(db, ticket_id)
    assert (repair.ticket_class, repair.status) == (TicketClass.REPAIR, S.ASSIGNED)
    assert repair.assignee_id is not None
    escalated = next(e for e in events(db, ticket_id) if e.type is EventType.TASK_ESCALATED)
    assert (escalated.source, escalated.data["deadline_min"]) == (Source.TIMER, 30)
    sent = statuses(db, ticket_id)[-1]  # escalated and assigned by one timer: one message to the store
    assert sent.status is S.ASSIGNED and "a technician is sent; " in sent.note
    with db.session() as session:  # now under an SLA, timed from the escalation
        row = tickets.get(session=session, ticket_id=ticket_id)
        assert sla.applies(row)
        assert sla.evaluate(session=session, ticket=row, now=at(40)).figures.of(SlaTarget.RESPONSE).elapsed == timedelta(
            minutes=10)


@pytest.mark.parametrize("case", ["done by the store", "fault cleared"])
def test_a_store_task_done_or_cleared_in_time_is_never_dispatched(
        db: Database, ingestor: Ingestor, clock: FakeClock, case: str) -> None:
    ticket_id = raise_at(ingestor, clock, 0, 1, **DOOR).created_ticket_id
    if case == "done by the store":
        act(db, ticket_id, Action.RESOLVE, 10, note="door closed")
    else:
        raise_at(ingestor, clock, 10, 2, state="cleared", **DOOR)
    run(db, 60)
    task = ticket(db, ticket_id)
    assert (task.ticket_class, task.status, task.assignee_id) == (TicketClass.STORE_TASK, S.RESOLVED, None)
    assert "task_escalated" not in event_types(db, ticket_id)


def test_a_store_task_without_a_deadline_stays_with_the_store(db: Database, ingestor: Ingestor,
                                                              clock: FakeClock) -> None:
    ticket_id = raise_at(ingestor, clock, 0, 1, code="on_battery", ticket_class="store_task", device="ups-1",
                         model="apc-smart-ups-nmc2").created_ticket_id
    assert pending_kinds(db, ticket_id) == {}
    run(db, 24 * 60)
    assert ticket(db, ticket_id).ticket_class is TicketClass.STORE_TASK


def test_two_timer_passes_racing_dispatch_a_task_once(db: Database, ingestor: Ingestor, clock: FakeClock) -> None:
    import threading

    ticket_id = raise_at(ingestor, clock, 0, 1, **DOOR).created_ticket_id
    barrier = threading.Barrier(2)
    fired: list[dict[str, int]] = []

    def worker() -> None:
        barrier.wait()
        fired.append(run(db, 31))

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sum(f.get(tickets.TASK_DEADLINE_KIND, 0) for f in fired) == 1
    assert event_types(db, ticket_id).count("task_escalated") == 1
    with db.session() as session:
        assert session.scalar(select(Ticket.ticket_class).where(Ticket.id == ticket_id)) is TicketClass.REPAIR


def test_the_technician_sent_to_an_overdue_task_is_notified(db: Database, ingestor: Ingestor,
                                                            clock: FakeClock) -> None:
    from central.notify.models import Kind, Notification

    ticket_id = raise_at(ingestor, clock, 0, 1, **DOOR).created_ticket_id
    with db.session() as session:
        assert session.scalars(select(Notification).where(Notification.ticket_id == ticket_id)).all() == []
    run(db, 30)
    with db.session() as session:
        sent = session.scalars(select(Notification).where(Notification.ticket_id == ticket_id)
                               .order_by(Notification.id)).all()
        assignee = tickets.get(session=session, ticket_id=ticket_id).assignee
        assert assignee is not None
        assert [(n.kind, n.payload["event"]["type"]) for n in sent] == [
            (Kind.TICKET_STATUS, "task_escalated"), (Kind.TICKET_STATUS, "assigned")]
        assert sent[-1].recipients == [assignee.user.username]
        assert sent[-1].channel == "log"
