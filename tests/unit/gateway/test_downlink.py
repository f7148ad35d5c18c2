"""Ticket status downlink: valid messages stored, bad ones rejected and counted, never raised."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from edge.clock import FakeClock
from gateway.downlink import DownlinkHandler
from gateway.metrics import GatewayMetrics
from gateway.storage import StoreDatabase
from gateway.tickets import RecordOutcome, TicketBook
from protocols.mqtt.messages import MAX_PAYLOAD_BYTES
from tests.unit.gateway.test_tickets import status

TOPIC = "storeguard/v1/store-001/ticket-status"


@pytest.fixture
def handler(tmp_path: Path) -> Iterator[tuple[DownlinkHandler, TicketBook, GatewayMetrics]]:
    with StoreDatabase.open(tmp_path / "store.db") as db:
        book = TicketBook(db, FakeClock())
        metrics = GatewayMetrics()
        yield DownlinkHandler(store_id="store-001", tickets=book, metrics=metrics), book, metrics


def test_valid_status_is_stored_and_acknowledged(handler: tuple[DownlinkHandler, TicketBook, GatewayMetrics]) -> None:
    downlink, book, metrics = handler
    result = downlink.handle(TOPIC, status(2, "assigned").to_bytes())
    assert result.ack and result.outcome is RecordOutcome.LATEST
    assert book.tickets()[0].statuses_received == ("assigned",)
    assert metrics.ticket_status_outcomes == {"latest": 1}


@pytest.mark.parametrize(
    ("topic", "payload", "reason"),
    [
        (TOPIC, b"{not json", "bad_json"),
        (TOPIC, b'{"kind": "ticket_status"}', "schema"),
        (TOPIC, b"\xff\xfe", "bad_json"),
        (TOPIC, status(1, "new", store_id="store-002").to_bytes(), "store_mismatch"),
        ("storeguard/v1/store-002/ticket-status", status(1, "new", store_id="store-002").to_bytes(), "wrong_store"),
        ("storeguard/v1/store-001/fault", b"{}", "unexpected_topic"),
        ("somewhere/else", b"{}", "bad_topic"),
        (TOPIC, b"x" * (MAX_PAYLOAD_BYTES + 1), "too_large"),
    ],
)
def test_bad_messages_are_rejected_counted_and_acknowledged(
    handler: tuple[DownlinkHandler, TicketBook, GatewayMetrics], topic: str, payload: bytes, reason: str
) -> None:
    downlink, book, metrics = handler
    result = downlink.handle(topic, payload)
    assert result.rejected == reason and result.ack  # acknowledged so the broker doesn't resend it forever
    assert metrics.ticket_status_rejected == {reason: 1}
    assert book.tickets() == []
    downlink.handle(topic, payload)
    assert metrics.ticket_status_rejected == {reason: 2}
