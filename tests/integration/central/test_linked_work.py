"""Linked work and correlated incidents, on SQLite and PostgreSQL.

A refrigerated case over temperature spawns the repair plus store tasks (move the goods, a
food-safety check with a discard record); the repair cannot close while one is open. Faults
of one store that belong together (a power cut, a silent bus, several devices within
minutes) become children of one incident instead of a dispatch each.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from central.auth.models import User
from central.clock import FakeClock
from central.db import Database
from central.errors import InvalidTransitionError
from central.ingest.processor import Ingestor
from central.metrics import Metrics
from central.sla import service as sla
from central.sla.models import SlaTarget
from central.tickets import service as tickets
from central.tickets.models import EventType, Link, Source, Ticket
from central.tickets.policy import Action, Lifecycle
from central.timers import service as timers
from device_profiles import ProfileRegistry
from protocols.mqtt.messages import TicketClass
from protocols.mqtt.messages import TicketStatusValue as S
from tests.integration.central.support import T0, events, fault, send, set_templates, statuses
from tests.integration.central.support import tickets as all_tickets
from tests.integration.central.test_rest import ingest, login

pytestmark = pytest.mark.linked_work
WINDOW = timedelta(minutes=10)


def at(minute: float):  # type: ignore[no-untyped-def]
    return T0 + timedelta(minutes=minute)


@pytest.fixture
def ingestor(db: Database, metrics: Metrics, clock: FakeClock, profiles: ProfileRegistry) -> Ingestor:
    return Ingestor(database=db, profiles=profiles, metrics=metrics, clock=clock,
                    lifecycle=Lifecycle(correlation_window=WINDOW, correlation_min_devices=3))


def raise_at(ingestor: Ingestor, clock: FakeClock, minute: float, seq: int = 1, state: str = "raised",
             **changes: Any) -> Any:
    clock.advance((at(minute) - clock.now()).total_seconds())
    return send(ingestor, fault(seq=seq, at=at(minute), state=state, **changes))


def get(db: Database, ticket_id: int) -> Ticket:
    with db.session() as session:
        return tickets.get(session=session, ticket_id=ticket_id)


def user(db: Database, username: str) -> User:
    with db.session() as session:
        found = session.scalar(select(User).where(User.username == username))
        assert found is not None
        return found


def act(db: Database, ticket_id: int, action: Action, minute: float, username: str = "", **kwargs: Any) -> None:
    with db.session() as session, session.begin():
        if username:
            tickets.act(session=session, ticket_id=ticket_id, action=action, user=user(db, username), now=at(minute),
                        **kwargs)
            return
        row = tickets.get(session=session, ticket_id=ticket_id, for_update=True)
        tickets.perform(session=session, ticket=row, action=action, now=at(minute), source=Source.API, actor="test",
                        **kwargs)


def children(db: Database, parent_id: int) -> list[Ticket]:
    return [t for t in all_tickets(db) if t.parent_id == parent_id]


def work_to_resolved(db: Database, ticket_id: int, minute: float) -> None:
    for step, action in enumerate((Action.ACCEPT, Action.EN_ROUTE, Action.ARRIVE)):
        act(db, ticket_id, action, minute + step)
    act(db, ticket_id, Action.RESOLVE, minute + 3, resolution_code="replaced_fan")


# --- linked work --------------------------------------------------------------------------------
def test_a_case_over_temperature_spawns_the_repair_and_the_stores_food_safety_tasks(
        db: Database, ingestor: Ingestor, clock: FakeClock) -> None:
    repair_id = raise_at(ingestor, clock, 0).created_ticket_id
    repair = get(db, repair_id)
    assert (repair.ticket_class, repair.status) == (TicketClass.REPAIR, S.ASSIGNED)
    tasks = children(db, repair_id)
    assert [(t.fault_code, t.ticket_class, t.status, t.link, t.assignee_id) for t in tasks] == [
        ("high_temperature.move_goods", TicketClass.STORE_TASK, S.NEW, Link.TASK, None),
        ("high_temperature.food_safety_check", TicketClass.STORE_TASK, S.NEW, Link.TASK, None)]
    assert [t.evidence["requires_record"] for t in tasks] == [False, True]
    assert all(t.device_id == "case-01" and t.priority == repair.priority for t in tasks)
    assert "linked to T-" in statuses(db, tasks[0].id)[0].note  # the store sees them on its list
    with db.session() as session:  # store tasks have no SLA and no timers
        assert all(not sla.applies(t) for t in tasks)
        assert all(timers.pending_for(session=session, ticket_id=t.id) == [] for t in tasks)


def test_the_repair_cannot_close_while_its_store_tasks_are_open(db: Database, ingestor: Ingestor,
                                                                clock: FakeClock) -> None:
    repair_id = raise_at(ingestor, clock, 0).created_ticket_id
    move, check = children(db, repair_id)
    work_to_resolved(db, repair_id, 5)
    with pytest.raises(InvalidTransitionError, match="linked work is open: .*Move the goods.*Food-safety check"):
        act(db, repair_id, Action.CLOSE, 20)
    act(db, move.id, Action.RESOLVE, 21, username="stan", note="moved to case 9")
    with pytest.raises(InvalidTransitionError, match="needs a record"):
        act(db, check.id, Action.RESOLVE, 22, username="stan", note="  ")
    act(db, check.id, Action.RESOLVE, 22, username="stan", note="discarded 4 kg of minced meat")
    act(db, repair_id, Action.CLOSE, 23, username="dora")
    assert get(db, repair_id).status is S.CLOSED
    assert get(db, check.id).resolution_note == "discarded 4 kg of minced meat"


def test_cancelling_the_repair_cancels_its_store_tasks(db: Database, ingestor: Ingestor, clock: FakeClock) -> None:
    repair_id = raise_at(ingestor, clock, 0).created_ticket_id
    act(db, repair_id, Action.CANCEL, 3, note="false alarm: probe in the defrost drain")
    assert [(t.status, t.link) for t in children(db, repair_id)] == [(S.CANCELLED, Link.TASK)] * 2
    assert "was cancelled" in events(db, children(db, repair_id)[0].id)[-1].note


def test_only_matching_faults_spawn_tasks_and_a_reopen_spawns_no_duplicates(
        db: Database, ingestor: Ingestor, clock: FakeClock) -> None:
    probe = raise_at(ingestor, clock, 0, code="probe_fault", store="store-2").created_ticket_id
    sco = raise_at(ingestor, clock, 0, code="high_temperature", device="lane-1", model="storeguard-sco-lane",
                   fault_class="revenue", store="store-3").created_ticket_id
    assert children(db, probe) == [] and children(db, sco) == []
    repair_id = raise_at(ingestor, clock, 1).created_ticket_id
    work_to_resolved(db, repair_id, 5)
    raise_at(ingestor, clock, 20, seq=2, state="cleared")
    raise_at(ingestor, clock, 30, seq=3)  # reopens the repair; its two tasks are still open
    assert get(db, repair_id).status is S.ASSIGNED
    assert len(children(db, repair_id)) == 2


def test_a_disabled_template_spawns_nothing(db: Database, ingestor: Ingestor, clock: FakeClock) -> None:
    set_templates(db, enabled=False)
    repair_id = raise_at(ingestor, clock, 0).created_ticket_id
    assert children(db, repair_id) == []


# --- correlation --------------------------------------------------------------------------------
def test_three_devices_faulting_within_minutes_become_one_incident(db: Database, ingestor: Ingestor,
                                                                   clock: FakeClock) -> None:
    set_templates(db, enabled=False)
    first = raise_at(ingestor, clock, 0, device="case-01").created_ticket_id
    second = raise_at(ingestor, clock, 3, device="case-02").created_ticket_id
    assert get(db, second).status is S.ASSIGNED  # two devices: still separate repairs
    third = raise_at(ingestor, clock, 6, device="case-03").created_ticket_id
    [incident] = [t for t in all_tickets(db) if t.fault_code == "multiple_faults"]
    assert (incident.device_id, incident.status, incident.priority) == ("store", S.ASSIGNED, get(db, first).priority)
    assert incident.evidence["devices"] == ["case-01", "case-02", "case-03"]
    members = [get(db, i) for i in (first, second, third)]
    assert [(t.parent_id, t.link, t.status, t.assignee_id) for t in members] == [
        (incident.id, Link.INCIDENT, S.NEW, None)] * 3
    unassigned = next(e for e in events(db, first) if e.type is EventType.CORRELATED)
    assert (unassigned.from_status, unassigned.to_status) == (S.ASSIGNED, S.NEW)
    assert unassigned.data["parent_id"] == incident.id
    with db.session() as session:  # the incident's SLA covers them: no timers of their own
        assert all(not sla.applies(t) for t in members)
        assert all(not timers.pending_for(session=session, ticket_id=t.id) for t in members)
    fourth = raise_at(ingestor, clock, 12, device="case-04").created_ticket_id  # within 10 min of the last
    assert get(db, fourth).parent_id == incident.id
    assert get(db, incident.id).evidence["devices"] == ["case-01", "case-02", "case-03", "case-04"]
    alone = raise_at(ingestor, clock, 40, device="case-05").created_ticket_id  # long after: its own repair
    assert (get(db, alone).parent_id, get(db, alone).status) == (None, S.ASSIGNED)


LANE = {"model": "storeguard-sco-lane", "code": "bill_jam", "fault_class": "revenue", "severity": "major"}


def test_faults_of_different_trades_within_minutes_are_dispatched_each(db: Database, ingestor: Ingestor,
                                                                       clock: FakeClock) -> None:
    set_templates(db, enabled=False)
    case = raise_at(ingestor, clock, 0, device="case-01").created_ticket_id
    lane = raise_at(ingestor, clock, 2, device="lane-1", **LANE).created_ticket_id
    other_case = raise_at(ingestor, clock, 4, device="case-02").created_ticket_id
    assert not [t for t in all_tickets(db) if t.fault_code == "multiple_faults"]  # two cases and a lane
    assert [get(db, i).parent_id for i in (case, lane, other_case)] == [None] * 3
    third_case = raise_at(ingestor, clock, 6, device="case-03").created_ticket_id  # three of one trade now
    [incident] = [t for t in all_tickets(db) if t.fault_code == "multiple_faults"]
    assert incident.required_skill == "refrigeration"
    assert sorted(incident.evidence["devices"]) == ["case-01", "case-02", "case-03"]
    assert get(db, third_case).parent_id == incident.id and get(db, lane).parent_id is None


def test_a_later_burst_joins_the_open_incident_of_its_trade(db: Database, ingestor: Ingestor,
                                                            clock: FakeClock) -> None:
    set_templates(db, enabled=False)
    for n, minute in enumerate((0, 2, 4), start=1):
        raise_at(ingestor, clock, minute, device=f"case-0{n}")
    [incident] = [t for t in all_tickets(db) if t.fault_code == "multiple_faults"]
    burst = [raise_at(ingestor, clock, minute, device=f"case-1{n}").created_ticket_id
             for n, minute in enumerate((40, 42, 44))]  # long after, the incident still open
    assert [t.id for t in all_tickets(db) if t.fault_code == "multiple_faults"] == [incident.id]
    assert {get(db, i).parent_id for i in burst} == {incident.id}  # the first two joined with the third
    lanes = [raise_at(ingestor, clock, 45 + n, device=f"lane-{n}", **LANE).created_ticket_id for n in range(3)]
    assert [get(db, i).parent_id for i in lanes] == [None] * 3  # another trade: on their own meanwhile


def test_an_incident_resolved_resolves_its_cleared_children_and_releases_the_rest(
        db: Database, ingestor: Ingestor, clock: FakeClock) -> None:
    set_templates(db, enabled=False)
    ids = [raise_at(ingestor, clock, minute, device=f"case-0{n}").created_ticket_id
           for n, minute in ((1, 0), (2, 1), (3, 2))]
    incident_id = get(db, ids[0]).parent_id
    assert incident_id is not None
    raise_at(ingestor, clock, 5, seq=2, state="cleared", device="case-01")
    raise_at(ingestor, clock, 6, seq=2, state="cleared", device="case-02")
    assert get(db, incident_id).fault_active is True  # case-03 still faulting
    work_to_resolved(db, incident_id, 7)  # resolved at minute 10
    one, two, three = (get(db, i) for i in ids)
    assert [(t.status, t.resolution_code) for t in (one, two)] == [(S.RESOLVED, "resolved_with_incident")] * 2
    assert (three.parent_id, three.link, three.status) == (None, None, S.ASSIGNED)  # dispatched on its own
    released = next(e for e in events(db, three.id) if e.type is EventType.RELEASED)
    assert released.data["parent_id"] == incident_id
    with db.session() as session:  # its own SLA, timed from the release
        row = tickets.get(session=session, ticket_id=three.id)
        assert sla.applies(row)
        assert sla.evaluate(session=session, ticket=row, now=at(15)).figures.of(
            SlaTarget.RESPONSE).elapsed == timedelta(minutes=5)
    act(db, incident_id, Action.CLOSE, 20)  # nothing of it is open any more


def test_an_incident_clears_when_every_child_has_cleared(db: Database, ingestor: Ingestor,
                                                          clock: FakeClock) -> None:
    set_templates(db, enabled=False)
    for n in (1, 2, 3):
        raise_at(ingestor, clock, n, device=f"case-0{n}")
    [incident] = [t for t in all_tickets(db) if t.fault_code == "multiple_faults"]
    for n in (1, 2, 3):
        raise_at(ingestor, clock, 5 + n, seq=2, state="cleared", device=f"case-0{n}")
    cleared = get(db, incident.id)
    assert (cleared.fault_active, cleared.fault_cleared_at) == (False, at(8))
    assert events(db, incident.id)[-1].type is EventType.FAULT_CLEARED


POWER = {"device": "store-power", "model": "store", "code": "store_power_loss", "severity": "critical"}
BUS = {"device": "rs485-1", "model": "bus", "code": "bus_offline", "severity": "critical",
       "fault_class": "equipment"}


def test_faults_during_a_power_loss_are_children_of_it(db: Database, ingestor: Ingestor, clock: FakeClock) -> None:
    set_templates(db, enabled=False)
    power = raise_at(ingestor, clock, 0, **POWER).created_ticket_id
    assert get(db, power).status is S.ASSIGNED  # the incident itself is dispatched (electrical)
    warm = [raise_at(ingestor, clock, 20 + n, device=f"case-0{n}").created_ticket_id for n in (1, 2)]
    assert [(get(db, i).parent_id, get(db, i).status) for i in warm] == [(power, S.NEW)] * 2
    raise_at(ingestor, clock, 30, seq=2, state="cleared", **POWER)
    late = raise_at(ingestor, clock, 35, device="case-05").created_ticket_id  # within the window after power
    after = raise_at(ingestor, clock, 60, device="case-06").created_ticket_id  # long after: its own
    assert get(db, late).parent_id == power
    assert (get(db, after).parent_id, get(db, after).status) == (None, S.ASSIGNED)


def test_a_silent_bus_takes_device_offline_faults_but_not_other_faults(db: Database, ingestor: Ingestor,
                                                                        clock: FakeClock) -> None:
    set_templates(db, enabled=False)
    bus = raise_at(ingestor, clock, 0, **BUS).created_ticket_id
    offline = raise_at(ingestor, clock, 1, device="case-01", code="device_offline",
                       fault_class="equipment").created_ticket_id
    warm = raise_at(ingestor, clock, 2, device="case-02").created_ticket_id
    assert get(db, offline).parent_id == bus
    assert (get(db, warm).parent_id, get(db, warm).status) == (None, S.ASSIGNED)


def test_correlation_off_dispatches_each_fault(db: Database, metrics: Metrics, clock: FakeClock,
                                               profiles: ProfileRegistry) -> None:
    set_templates(db, enabled=False)
    plain = Ingestor(database=db, profiles=profiles, metrics=metrics, clock=clock)  # the default: off
    for n in range(1, 5):
        raise_at(plain, clock, n, device=f"case-0{n}")
    assert [(t.parent_id, t.status) for t in all_tickets(db)] == [(None, S.ASSIGNED)] * 4


# --- the templates API --------------------------------------------------------------------------
def test_admins_define_templates_that_spawn_tasks_and_the_ticket_shows_its_children(client: TestClient) -> None:
    adam = login(client, "adam")
    body = {"description": "A lane down at a busy time", "fault_class": "revenue",
            "device_kind": "self_checkout_lane", "fault_codes": ["scanner_fault"],
            "tasks": [{"code": "close_lane", "title": "Close the lane and put up the sign"},
                      {"code": "close_lane", "title": "twice"}]}
    response = client.put("/api/v1/work-templates/lane-down", headers=adam, json=body)
    assert response.status_code == 422 and "task codes must be unique" in response.text
    body["tasks"] = body["tasks"][:1]
    response = client.put("/api/v1/work-templates/lane-down", headers=adam, json=body)
    assert response.status_code == 201, response.text
    assert response.json()["updated_by"] == "adam"
    assert client.put("/api/v1/work-templates/lane-down", headers=adam, json=body).status_code == 200
    names = [t["name"] for t in client.get("/api/v1/work-templates", headers=login(client, "tina")).json()]
    assert names == ["lane-down", "refrigerated-case-over-temperature"]

    ingest(client, fault(device="lane-3", model="storeguard-sco-lane", code="scanner_fault", fault_class="revenue"))
    [lane] = [t for t in client.get("/api/v1/tickets", headers=adam).json() if t["parent_id"] is None]
    detail = client.get(f"/api/v1/tickets/{lane['id']}", headers=adam).json()
    assert [(c["fault_code"], c["link"], c["ticket_class"]) for c in detail["children"]] == [
        ("scanner_fault.close_lane", "task", "store_task")]
    assert client.delete("/api/v1/work-templates/lane-down", headers=adam).status_code == 204
    assert client.delete("/api/v1/work-templates/lane-down", headers=adam).status_code == 404
