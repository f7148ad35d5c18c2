"""Ticket statuses from central: the highest version wins, every arrival is logged once."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from edge.clock import FakeClock
from gateway.storage import StoreDatabase
from gateway.tickets import RecordOutcome, TicketBook
from protocols.mqtt.messages import TicketStatus, TicketStatusValue
from tests.unit.gateway.fakes import T0


def status(version: int, value: str, ticket_id: int = 7, **changes: object) -> TicketStatus:
    fields: dict[str, object] = {
        "store_id": "store-001", "ticket_id": ticket_id, "ticket_number": f"T-{ticket_id:06d}",
        "version": version, "device_id": "case-01", "fault_code": "high_temperature", "status": value,
        "priority": 2, "changed_at": T0,
    }
    fields.update(changes)
    return TicketStatus.model_validate(fields)


@pytest.fixture
def db(tmp_path: Path) -> Iterator[StoreDatabase]:
    with StoreDatabase.open(tmp_path / "store.db") as database:
        yield database


def test_newer_versions_replace_and_statuses_are_listed_in_arrival_order(db: StoreDatabase) -> None:
    book = TicketBook(db, FakeClock())
    assert book.record(status(1, "new")) is RecordOutcome.LATEST
    assert book.record(status(2, "assigned", assignee="Ana")) is RecordOutcome.LATEST
    assert book.record(status(3, "accepted", assignee="Ana")) is RecordOutcome.LATEST
    [ticket] = book.tickets()
    assert ticket.status.status is TicketStatusValue.ACCEPTED
    assert ticket.status.assignee == "Ana"
    assert ticket.statuses_received == ("new", "assigned", "accepted")


def test_a_late_older_version_is_logged_but_does_not_overwrite(db: StoreDatabase) -> None:
    book = TicketBook(db, FakeClock())
    book.record(status(1, "new"))
    book.record(status(3, "en_route"))
    assert book.record(status(2, "accepted")) is RecordOutcome.STALE
    [ticket] = book.tickets()
    assert (ticket.status.version, ticket.status.status) == (3, TicketStatusValue.EN_ROUTE)
    assert ticket.statuses_received == ("new", "en_route", "accepted")


def test_a_redelivered_version_is_recorded_once(db: StoreDatabase) -> None:
    book = TicketBook(db, FakeClock())
    first = status(2, "assigned")
    book.record(first)
    assert book.record(first) is RecordOutcome.DUPLICATE
    assert book.record(status(2, "assigned")) is RecordOutcome.DUPLICATE  # same version, new message id
    assert book.tickets()[0].statuses_received == ("assigned",)


def test_tickets_are_kept_apart_and_survive_a_restart(tmp_path: Path) -> None:
    with StoreDatabase.open(tmp_path / "s.db") as db:
        book = TicketBook(db, FakeClock())
        book.record(status(1, "assigned", ticket_id=9))
        book.record(status(1, "new", ticket_id=4))
        book.record(status(2, "closed", ticket_id=9))
    with StoreDatabase.open(tmp_path / "s.db") as db:
        tickets = TicketBook(db, FakeClock()).tickets()
    assert [(t.status.ticket_id, t.status.status.value, t.statuses_received) for t in tickets] == [
        (4, "new", ("new",)),
        (9, "closed", ("assigned", "closed")),
    ]


def test_each_receipt_keeps_central_change_time_and_store_arrival_time(db: StoreDatabase) -> None:
    clock = FakeClock(start=T0)
    book = TicketBook(db, clock)
    book.record(status(1, "assigned", changed_at=T0))
    clock.advance(0.25)
    book.record(status(2, "accepted", changed_at=T0))
    [ticket] = book.tickets()
    assert [(r.version, r.status) for r in ticket.receipts] == [(1, "assigned"), (2, "accepted")]
    assert ticket.receipts[0].changed_at == T0.timestamp()
    assert ticket.receipts[1].received_at - ticket.receipts[1].changed_at == pytest.approx(0.25)
