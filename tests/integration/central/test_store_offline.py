"""A store whose gateway goes silent: after a grace, one store_offline incident (SQLite and PostgreSQL);
faults that happened while it was away join it; its return clears the fault."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from central.app import timer_registry
from central.clock import FakeClock
from central.db import Database
from central.ingest.processor import Ingestor
from central.ingest.store_watch import OFFLINE_KIND
from central.metrics import Metrics
from central.tickets import service as tickets
from central.tickets.models import EventType, Link
from central.tickets.policy import Lifecycle
from central.timers import service as timers
from device_profiles import ProfileRegistry
from protocols.mqtt.messages import StoreHealth
from protocols.mqtt.messages import TicketStatusValue as S
from tests.integration.central.support import T0, events, fault, send
from tests.integration.central.support import tickets as all_tickets

LIFECYCLE = Lifecycle(store_offline_grace=timedelta(minutes=10), recovery_grace=timedelta(minutes=15))
REGISTRY = timer_registry(LIFECYCLE)


def at(minute: float):  # type: ignore[no-untyped-def]
    return T0 + timedelta(minutes=minute)


@pytest.fixture
def ingestor(db: Database, metrics: Metrics, clock: FakeClock, profiles: ProfileRegistry) -> Ingestor:
    return Ingestor(database=db, profiles=profiles, metrics=metrics, clock=clock, lifecycle=LIFECYCLE)


def move(clock: FakeClock, minute: float) -> None:
    clock.advance((at(minute) - clock.now()).total_seconds())


def health(ingestor: Ingestor, clock: FakeClock, minute: float, *, online: bool) -> None:
    move(clock, minute)
    send(ingestor, StoreHealth(store_id="store-1", online=online, sent_at=at(minute), name="Store One"))


def run(db: Database, minute: float) -> dict[str, int]:
    return timers.run_pass(database=db, registry=REGISTRY, now=at(minute)).fired


def offline_tickets(db: Database) -> list[Any]:
    return [t for t in all_tickets(db) if t.fault_code == "store_offline"]


def test_a_blip_shorter_than_the_grace_opens_nothing(db: Database, ingestor: Ingestor, clock: FakeClock) -> None:
    health(ingestor, clock, 0, online=True)
    health(ingestor, clock, 1, online=False)  # the broker publishes the last will
    health(ingestor, clock, 5, online=True)
    assert run(db, 30).get(OFFLINE_KIND) is None
    assert offline_tickets(db) == []


def test_a_store_offline_past_the_grace_is_an_incident_its_faults_join_and_its_return_clears(
        db: Database, ingestor: Ingestor, clock: FakeClock) -> None:
    health(ingestor, clock, 0, online=True)
    health(ingestor, clock, 1, online=False)
    assert run(db, 10.9).get(OFFLINE_KIND) is None
    assert run(db, 11)[OFFLINE_KIND] == 1
    [incident] = offline_tickets(db)
    assert (incident.device_id, incident.device_model, incident.required_skill) == ("gateway", "gateway", "controls")
    assert (incident.status, incident.fault_active, incident.first_raised_at) == (S.NEW, True, at(1))
    assert incident.evidence["offline_min"] == 10
    assert "no active technician has the skill 'controls'" in events(db, incident.id)[-1].note

    health(ingestor, clock, 40, online=True)  # back: its outbox replays what happened meanwhile
    move(clock, 40)
    during = send(ingestor, fault(device="case-02", seq=7, at=at(20))).created_ticket_id
    with db.session() as session:
        child = tickets.get(session=session, ticket_id=during)
        assert (child.parent_id, child.link, child.status) == (incident.id, Link.INCIDENT, S.NEW)
        back = tickets.get(session=session, ticket_id=incident.id)
        assert (back.fault_active, back.fault_cleared_at) == (False, at(40))
    assert [e.type for e in events(db, incident.id) if e.type is EventType.FAULT_CLEARED] == [
        EventType.FAULT_CLEARED]
    run(db, 55)  # nobody accepted it: recovered after the grace
    with db.session() as session:
        assert tickets.get(session=session, ticket_id=incident.id).resolution_code == "recovered"
        # the warm case is still faulting: released and dispatched on its own
        released = tickets.get(session=session, ticket_id=during)
        assert (released.parent_id, released.status) == (None, S.ASSIGNED)


def test_a_second_outage_within_the_reopen_window_reopens_the_incident(db: Database, ingestor: Ingestor,
                                                                       clock: FakeClock) -> None:
    health(ingestor, clock, 0, online=False)
    run(db, 10)
    health(ingestor, clock, 20, online=True)
    run(db, 40)
    [first] = offline_tickets(db)
    assert first.status is S.RESOLVED
    health(ingestor, clock, 60, online=False)
    run(db, 70)
    [again] = offline_tickets(db)
    assert (again.id, again.status, again.raise_count) == (first.id, S.NEW, 2)


POWER = {"device": "store-power", "model": "store", "code": "store_power_loss", "severity": "critical"}


def test_a_store_gone_offline_during_its_power_loss_is_part_of_that_incident(db: Database, ingestor: Ingestor,
                                                                             clock: FakeClock) -> None:
    health(ingestor, clock, 0, online=True)
    move(clock, 1)
    power = send(ingestor, fault(seq=1, at=at(1), **POWER)).created_ticket_id
    health(ingestor, clock, 5, online=False)  # the UPS ran out: the gateway went down too
    assert run(db, 15)[OFFLINE_KIND] == 1
    [offline] = offline_tickets(db)
    # explained by the power loss: one dispatch (the electrician's), not a second one for controls
    assert (offline.parent_id, offline.link, offline.status, offline.assignee_id) == (
        power, Link.INCIDENT, S.NEW, None)
    assert [e.type for e in events(db, offline.id)][-1] is EventType.CORRELATED


def test_a_store_offline_long_after_a_power_loss_is_its_own_incident(db: Database, ingestor: Ingestor,
                                                                     clock: FakeClock) -> None:
    health(ingestor, clock, 0, online=True)
    move(clock, 1)
    send(ingestor, fault(seq=1, at=at(1), **POWER))
    move(clock, 5)
    send(ingestor, fault(seq=2, state="cleared", at=at(5), **POWER))
    health(ingestor, clock, 60, online=False)  # power back since minute 5, well past the window
    assert run(db, 75)[OFFLINE_KIND] == 1
    [offline] = offline_tickets(db)
    assert (offline.parent_id, offline.link) == (None, None)
