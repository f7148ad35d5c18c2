"""Fault events out of order (shared subscription, redelivery, a store's backlog), on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import delete, select

from central.db import Database
from central.faults.models import FaultStateRecord
from central.ingest.processor import Ingestor
from central.metrics import Metrics
from central.tickets.models import EventType
from protocols.mqtt.messages import FaultState, TicketStatusValue
from tests.integration.central.support import T0, events, fault, send, statuses, tickets

LATE = "storeguard_central_fault_events_out_of_order_total"
TASK: dict[str, Any] = dict(model="storeguard-sco-lane", device="lane-04", code="paper_near_end", severity="minor",
                            fault_class="revenue", ticket_class="store_task")


def minutes(n: int) -> Any:
    return T0 + timedelta(minutes=n)


def known_state(database: Database) -> FaultStateRecord:
    with database.session() as session:
        return session.scalars(select(FaultStateRecord)).one()


def test_a_clear_before_its_raise_opens_the_ticket_already_cleared(db: Database, ingestor: Ingestor,
                                                                   metrics: Metrics) -> None:
    send(ingestor, fault(seq=2, state="cleared", at=minutes(30)))
    assert tickets(db) == []  # nothing to clear yet, but the state is kept
    state = known_state(db)
    assert (state.state, state.occurred_at, state.seq) == (FaultState.CLEARED, minutes(30), 2)
    result = send(ingestor, fault(seq=1, at=minutes(0)))
    [ticket] = tickets(db)
    assert result.created_ticket_id == ticket.id  # the fault did happen: it gets its ticket
    assert ticket.fault_active is False and ticket.fault_cleared_at == minutes(30)
    assert ticket.first_raised_at == minutes(0)
    assert ticket.status is TicketStatusValue.ASSIGNED  # a repair: a technician verifies
    [sent] = statuses(db, ticket.id)  # one message per applied event: the ticket's final state
    assert (sent.status, sent.fault_active) == (TicketStatusValue.ASSIGNED, False)
    assert events(db, ticket.id)[0].data["fault_cleared_at"] == minutes(30).isoformat()
    assert known_state(db).state is FaultState.CLEARED  # the older raise did not change it
    assert metrics.value(LATE) == 1


def test_a_store_task_whose_clear_came_first_resolves_as_recovered_at_once(db: Database,
                                                                            ingestor: Ingestor) -> None:
    send(ingestor, fault(seq=2, state="cleared", at=minutes(5), **TASK))
    send(ingestor, fault(seq=1, at=minutes(0), **TASK))
    [ticket] = tickets(db)
    assert ticket.status is TicketStatusValue.RESOLVED and ticket.resolution_code == "recovered"
    assert ticket.fault_active is False
    [sent] = statuses(db, ticket.id)  # created and resolved in one go: the store hears the outcome
    assert sent.status is TicketStatusValue.RESOLVED and sent.version == ticket.version


def test_an_old_raise_resent_after_the_clear_leaves_the_fault_cleared(db: Database, ingestor: Ingestor,
                                                                      metrics: Metrics) -> None:
    send(ingestor, fault(seq=1, at=minutes(0)))
    send(ingestor, fault(seq=2, state="cleared", at=minutes(30)))
    [ticket] = tickets(db)
    version = ticket.version
    send(ingestor, fault(seq=1, at=minutes(0)))  # the same raise again, under a new message_id
    [ticket] = tickets(db)
    assert ticket.fault_active is False and ticket.fault_cleared_at == minutes(30)
    assert ticket.raise_count == 1 and ticket.version == version  # history only: no change, no status
    late = events(db, ticket.id)[-1]
    assert late.type is EventType.OUT_OF_ORDER and late.data["state"] == "raised" and late.data["seq"] == 1
    assert metrics.value(LATE) == 1


def test_an_old_raise_after_a_recovered_store_task_opens_no_new_ticket(db: Database, ingestor: Ingestor) -> None:
    send(ingestor, fault(seq=1, at=minutes(0), **TASK))
    send(ingestor, fault(seq=2, state="cleared", at=minutes(5), **TASK))
    send(ingestor, fault(seq=1, at=minutes(0), **TASK))  # resent late: its ticket is already resolved
    [ticket] = tickets(db)
    assert ticket.status is TicketStatusValue.RESOLVED
    assert events(db, ticket.id)[-1].type is EventType.OUT_OF_ORDER


def test_a_new_episode_whose_clear_came_first_gets_its_own_cleared_ticket(db: Database, ingestor: Ingestor) -> None:
    send(ingestor, fault(seq=1, at=minutes(0), **TASK))
    send(ingestor, fault(seq=2, state="cleared", at=minutes(5), **TASK))  # ticket 1 recovered
    send(ingestor, fault(seq=4, state="cleared", at=minutes(30), **TASK))
    send(ingestor, fault(seq=3, at=minutes(20), **TASK))  # raised after ticket 1's clear, cleared at 30
    first, second = tickets(db)
    assert first.fault_cleared_at == minutes(5)
    assert second.first_raised_at == minutes(20) and second.fault_cleared_at == minutes(30)
    assert second.fault_active is False and second.status is TicketStatusValue.RESOLVED


def test_a_raise_newer_than_the_clear_activates_the_fault_again(db: Database, ingestor: Ingestor,
                                                                metrics: Metrics) -> None:
    send(ingestor, fault(seq=1, at=minutes(0)))
    send(ingestor, fault(seq=2, state="cleared", at=minutes(30)))
    send(ingestor, fault(seq=3, at=minutes(40)))
    [ticket] = tickets(db)
    assert ticket.fault_active is True and ticket.fault_cleared_at is None and ticket.raise_count == 2
    assert statuses(db, ticket.id)[-1].fault_active is True
    assert known_state(db).state is FaultState.RAISED and metrics.value(LATE) == 0


def test_in_order_raise_and_clear_still_work_and_are_recorded(db: Database, ingestor: Ingestor,
                                                              metrics: Metrics) -> None:
    send(ingestor, fault(seq=1, at=minutes(0)))
    assert known_state(db).state is FaultState.RAISED
    send(ingestor, fault(seq=2, state="updated", at=minutes(10), evidence={"value": 12.0}))
    assert known_state(db).state is FaultState.RAISED  # an update is news about an active fault
    send(ingestor, fault(seq=3, state="cleared", at=minutes(30)))
    [ticket] = tickets(db)
    assert ticket.fault_active is False and ticket.fault_cleared_at == minutes(30)
    assert [e.type for e in events(db, ticket.id)][-2:] == [EventType.FAULT_UPDATED, EventType.FAULT_CLEARED]
    assert (known_state(db).state, known_state(db).seq) == (FaultState.CLEARED, 3)
    assert metrics.value(LATE) == 0


def test_a_late_clear_is_kept_in_the_trail_and_the_fault_stays_active(db: Database, ingestor: Ingestor) -> None:
    send(ingestor, fault(seq=1, at=minutes(0)))
    send(ingestor, fault(seq=3, at=minutes(20)))
    send(ingestor, fault(seq=2, state="cleared", at=minutes(10)))  # between the two raises, processed last
    [ticket] = tickets(db)
    assert ticket.fault_active is True
    assert events(db, ticket.id)[-1].type is EventType.OUT_OF_ORDER


def test_events_of_the_same_moment_are_ordered_by_seq(db: Database, ingestor: Ingestor) -> None:
    send(ingestor, fault(seq=5, at=minutes(0)))
    send(ingestor, fault(seq=4, state="cleared", at=minutes(0)))  # same time, earlier seq: older
    assert tickets(db)[0].fault_active is True
    send(ingestor, fault(seq=6, state="cleared", at=minutes(0)))
    assert tickets(db)[0].fault_active is False


def test_without_a_recorded_state_the_ticket_still_refuses_an_older_raise(db: Database, ingestor: Ingestor) -> None:
    """Tickets from before fault states were recorded: the ticket's clear time is the guard."""
    send(ingestor, fault(seq=1, at=minutes(0)))
    send(ingestor, fault(seq=2, state="cleared", at=minutes(30)))
    with db.session() as session, session.begin():
        session.execute(delete(FaultStateRecord))
    send(ingestor, fault(seq=1, at=minutes(0)))
    [ticket] = tickets(db)
    assert ticket.fault_active is False and ticket.raise_count == 1
    assert events(db, ticket.id)[-1].type is EventType.OUT_OF_ORDER
