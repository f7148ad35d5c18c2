"""SLA timers end to end on a real database: warnings at 50/75%, breach escalation level by level,
cancel on met/pause, re-plan on resume, reassignment when not accepted, race and restart safety."""

from __future__ import annotations

import threading
from collections import Counter
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select

from central.app import timer_registry
from central.auth.models import Role, User
from central.db import Database, migrate
from central.ingest.processor import Ingestor
from central.sla.plan import BREACH_KIND
from central.stores.models import Store
from central.technicians.models import Technician
from central.tickets import service as tickets
from central.tickets.models import EventType, Source, TicketEvent
from central.tickets.policy import Action
from central.timers import service as timers
from central.timers.models import Timer
from protocols.mqtt.messages import TicketStatusValue as S
from tests.integration.central.support import T0, events, fault, send, technician_id

REGISTRY = timer_registry()


def minutes(value: float):  # type: ignore[no-untyped-def]
    return T0 + timedelta(minutes=value)


def run(db: Database, at_minute: float) -> dict[str, int]:
    return timers.run_pass(database=db, registry=REGISTRY, now=minutes(at_minute)).fired


def act(db: Database, ticket_id: int, action: Action, at_minute: float, **kwargs: Any) -> None:
    with db.session() as session, session.begin():
        ticket = tickets.get(session=session, ticket_id=ticket_id, for_update=True)
        tickets.perform(session=session, ticket=ticket, action=action, now=minutes(at_minute), source=Source.API,
                        actor="test", **kwargs)


def sla_events(db: Database, ticket_id: int) -> list[tuple[str, Any, Any]]:
    return [(e.type.value, e.data.get("target"), e.data.get("stage") or e.data.get("level"))
            for e in events(db, ticket_id) if e.type in (EventType.SLA_WARNING, EventType.ESCALATED)]


def pending(db: Database, ticket_id: int) -> dict[str, Any]:
    with db.session() as session:
        return {t.key: t.due_at for t in timers.pending_for(session=session, ticket_id=ticket_id)}


def open_ticket(ingestor: Ingestor, device: str = "case-01", **changes: Any) -> int:
    result = send(ingestor, fault(device=device, **changes))
    assert result.created_ticket_id is not None
    return result.created_ticket_id


def test_warnings_then_breach_escalates_level_by_level(db: Database, ingestor: Ingestor) -> None:
    ticket_id = open_ticket(ingestor)  # food safety, major: priority 2, 24/7: 30 / 240 / 480 min, 60 min between levels
    act(db, ticket_id, Action.ACCEPT, 1)
    act(db, ticket_id, Action.EN_ROUTE, 2)
    assert set(pending(db, ticket_id)) == {f"sla:{ticket_id}:{t}:{s}" for t in ("arrival", "resolution")
                                           for s in ("warn50", "warn75", "breach")}
    assert run(db, 119) == {}
    assert run(db, 120) == {"sla_warning": 1}
    assert run(db, 180) == {"sla_warning": 1}
    assert run(db, 240) == {"sla_breach": 1, "sla_warning": 1}
    assert run(db, 299) == {}
    assert run(db, 300) == {"sla_escalation": 1}
    assert run(db, 360) == {"sla_escalation": 1, "sla_warning": 1}
    assert run(db, 2000) == {"sla_breach": 1}  # resolution breached; arrival has no level 4
    assert sla_events(db, ticket_id) == [
        ("sla_warning", "arrival", "warn50"), ("sla_warning", "arrival", "warn75"), ("escalated", "arrival", 1),
        ("sla_warning", "resolution", "warn50"), ("escalated", "arrival", 2), ("sla_warning", "resolution", "warn75"),
        ("escalated", "arrival", 3), ("escalated", "resolution", 1)]  # same deadline: in the order scheduled
    level_1 = next(e for e in events(db, ticket_id) if e.type is EventType.ESCALATED)
    assert level_1.data["recipients"] == ["tina"] and level_1.source is Source.TIMER
    assert level_1.at == minutes(240) and "arrival target breached" in level_1.note
    assert set(pending(db, ticket_id)) == {f"sla:{ticket_id}:resolution:esc2"}


def test_escalation_reaches_the_regions_supervisor_and_regional_manager(db: Database, ingestor: Ingestor) -> None:
    supervisor, manager = Role.SUPERVISOR, Role.REGIONAL_MANAGER
    ticket_id = open_ticket(ingestor)
    with db.session() as session, session.begin():
        session.get_one(Store, "store-1").region = "north"
        for name, role, region in (("sue", supervisor, "north"), ("sid", supervisor, "south"),
                                   ("rob", manager, "north")):
            session.add(User(username=name, display_name=name, role=role, password_hash="x", active=True,
                             created_at=T0, region=region))
    for minute in (30, 90, 150):
        run(db, minute)
    levels = {e.data["level"]: e.data["recipients"] for e in events(db, ticket_id) if e.type is EventType.ESCALATED}
    # tina let it sit unaccepted past the accept window, so rita holds it when level 1 fires
    assert levels == {1: ["rita"], 2: ["sue"], 3: ["rob"]}
    assert [e.data["from_technician_id"] for e in events(db, ticket_id) if e.type is EventType.REASSIGNED]


def test_a_met_target_cancels_its_timers_and_a_stale_timer_does_nothing(db: Database, ingestor: Ingestor) -> None:
    ticket_id = open_ticket(ingestor)
    act(db, ticket_id, Action.ACCEPT, 10)
    assert not any(":response:" in key for key in pending(db, ticket_id))
    with db.session() as session, session.begin():  # a duplicate left over from an earlier plan
        timers.schedule(session=session, key=f"dup:{ticket_id}", kind=BREACH_KIND, due_at=minutes(30), now=T0,
                        ticket_id=ticket_id, data={"target": "response", "level": 1})
    assert run(db, 31) == {"sla_breach": 1}
    assert sla_events(db, ticket_id) == []


def test_a_pause_stops_the_clock_and_resume_moves_the_deadline(db: Database, ingestor: Ingestor) -> None:
    ticket_id = open_ticket(ingestor)
    for minute, action in ((1, Action.ACCEPT), (2, Action.EN_ROUTE), (60, Action.ARRIVE), (100, Action.AWAIT_PARTS)):
        act(db, ticket_id, action, minute)
    assert pending(db, ticket_id) == {}  # arrival met, resolution paused
    assert run(db, 1000) == {}
    act(db, ticket_id, Action.RESUME, 1100)
    with db.session() as session:
        assert tickets.get(session=session, ticket_id=ticket_id).status is S.ON_SITE
    # resolution: 480 min, 100 used before the pause -> due 380 min after resuming
    assert pending(db, ticket_id)[f"sla:{ticket_id}:resolution:breach"] == minutes(1480)
    assert pending(db, ticket_id)[f"sla:{ticket_id}:resolution:warn50"] == minutes(1240)
    trail = [(e.type.value, e.to_status) for e in events(db, ticket_id)][-2:]
    assert trail == [("awaiting_parts", S.AWAITING_PARTS), ("resumed", S.ON_SITE)]


def test_hold_from_en_route_resumes_to_en_route(db: Database, ingestor: Ingestor) -> None:
    ticket_id = open_ticket(ingestor)
    act(db, ticket_id, Action.ACCEPT, 1)
    act(db, ticket_id, Action.EN_ROUTE, 2)
    act(db, ticket_id, Action.HOLD, 3, note="store closed, no key")
    act(db, ticket_id, Action.RESUME, 50)
    with db.session() as session:
        ticket = tickets.get(session=session, ticket_id=ticket_id)
        assert ticket.status is S.EN_ROUTE and ticket.paused_from is None
    held = next(e for e in events(db, ticket_id) if e.type is EventType.HELD)
    assert held.data["paused_from"] == "en_route" and held.note == "store closed, no key"


def test_an_assignment_not_accepted_in_time_goes_to_the_next_candidate_never_back(
        db: Database, ingestor: Ingestor) -> None:
    ticket_id = open_ticket(ingestor)  # priority 2: 15 min to accept
    tina, rita = technician_id(db, "tina"), technician_id(db, "rita")
    assert pending(db, ticket_id)[f"sla:{ticket_id}:accept"] == minutes(15)
    assert run(db, 14) == {}
    assert run(db, 15) == {"sla_accept_window": 1, "sla_warning": 1}  # and 50% of the 30 min response
    with db.session() as session:
        assert tickets.get(session=session, ticket_id=ticket_id).assignee_id == rita
    assert pending(db, ticket_id)[f"sla:{ticket_id}:accept"] == minutes(30)
    assert run(db, 30)["sla_accept_window"] == 1
    with db.session() as session:
        ticket = tickets.get(session=session, ticket_id=ticket_id)
        assert ticket.status is S.NEW and ticket.assignee_id is None  # nobody left: back to dispatch
    moved = [(e.type.value, e.data.get("from_technician_id"), e.data.get("technician_id"), e.source.value)
             for e in events(db, ticket_id) if e.type in (EventType.REASSIGNED, EventType.NOT_ASSIGNED)]
    assert moved == [("reassigned", tina, rita, "timer"), ("reassigned", rita, rita, "timer"),
                     ("not_assigned", None, None, "timer")]
    assert f"sla:{ticket_id}:accept" not in pending(db, ticket_id)
    with db.session() as session, session.begin():
        ticket = tickets.get(session=session, ticket_id=ticket_id, for_update=True)
        choice = tickets.auto_assign(session=session, ticket=ticket, now=minutes(31))
    assert choice.technician is None  # neither tina nor rita is offered it again


def test_accepting_in_time_cancels_the_window(db: Database, ingestor: Ingestor) -> None:
    ticket_id = open_ticket(ingestor)
    act(db, ticket_id, Action.ACCEPT, 14)
    assert f"sla:{ticket_id}:accept" not in pending(db, ticket_id)
    assert run(db, 16) == {}


def test_two_workers_escalate_each_breached_ticket_once_and_a_restart_loses_no_timer(
        postgres_url: str, seed_path, profiles, metrics, clock) -> None:  # type: ignore[no-untyped-def]
    from central.seed import load_seed

    migrate(postgres_url)
    db = Database(postgres_url)
    with db.session() as session, session.begin():
        load_seed(session, seed_path, now=T0)
    ingestor = Ingestor(database=db, profiles=profiles, metrics=metrics, clock=clock)
    ids = [open_ticket(ingestor, device=f"case-{i:03d}") for i in range(24)]
    with db.session() as session, session.begin():
        for ticket_id in ids:
            ticket = tickets.get(session=session, ticket_id=ticket_id, for_update=True)
            tickets.perform(session=session, ticket=ticket, action=Action.ACCEPT, now=minutes(1), source=Source.API)
    with db.session() as session, session.begin():  # a duplicate breach timer per ticket: both workers race on it
        for ticket_id in ids:
            timers.schedule(session=session, key=f"dup:{ticket_id}", kind=BREACH_KIND, due_at=minutes(240),
                            now=T0, ticket_id=ticket_id, data={"target": "arrival", "level": 1})
    db.dispose()

    def workers(at_minute: float) -> None:
        databases = [Database(postgres_url) for _ in range(2)]  # a fresh start: nothing in memory
        barrier = threading.Barrier(2)

        def worker(database: Database) -> None:
            barrier.wait()
            timers.run_pass(database=database, registry=REGISTRY, now=minutes(at_minute), batch_size=5)

        threads = [threading.Thread(target=worker, args=(d,)) for d in databases]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(120)
        for database in databases:
            database.dispose()

    workers(240)
    workers(300)
    db = Database(postgres_url)
    try:
        with db.session() as session:
            rows = session.scalars(select(TicketEvent).where(TicketEvent.type == EventType.ESCALATED)).all()
            left = session.scalars(select(Timer.key).where(Timer.key.like("dup:%"))).all()
        counts = Counter((e.ticket_id, e.data["target"], e.data["level"]) for e in rows)
        assert set(counts) == {(t, "arrival", level) for t in ids for level in (1, 2)}
        assert set(counts.values()) == {1}
        assert left == []
    finally:
        db.dispose()


def test_technician_load_is_unchanged_by_the_hook(db: Database, ingestor: Ingestor) -> None:
    """Repeat raises do not re-plan (same status, priority, assignee): the timers stay as they were."""
    ticket_id = open_ticket(ingestor)
    before = pending(db, ticket_id)
    send(ingestor, fault(seq=2, at=minutes(5)))
    with db.session() as session:
        assert session.get_one(Technician, technician_id(db, "tina")).active
        assert tickets.get(session=session, ticket_id=ticket_id).raise_count == 2
    assert pending(db, ticket_id) == before
