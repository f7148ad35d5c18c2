"""Contract violations are counted per reason, logged once per reason, and touch no database."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime

import pytest

from central.clock import FakeClock
from central.db import Database
from central.ingest.flows import Outcome
from central.ingest.processor import Ingestor
from central.metrics import Metrics
from device_profiles import ProfileRegistry
from protocols.mqtt.messages import MAX_PAYLOAD_BYTES, FaultEvent, TicketStatus

REJECTED = "storeguard_central_messages_rejected_total"


def _fault(store: str) -> FaultEvent:
    return FaultEvent(store_id=store, seq=1, device_id="case-01", device_model="dixell-xr75cx",
                      fault_code="high_temperature", state="raised", severity="major", fault_class="food_safety",
                      ticket_class="repair", occurred_at=datetime(2026, 1, 5, tzinfo=UTC))


@pytest.fixture
def ingestor(tmp_path) -> tuple[Ingestor, Metrics]:  # type: ignore[no-untyped-def]
    # The database file is never created: rejections are decided before any transaction.
    metrics = Metrics()
    database = Database(f"sqlite:///{tmp_path / 'untouched' / 'central.db'}")
    return Ingestor(database=database, profiles=ProfileRegistry.load(), metrics=metrics, clock=FakeClock()), metrics


def test_each_reason_is_counted(ingestor, tmp_path) -> None:  # type: ignore[no-untyped-def]
    ing, metrics = ingestor
    good = _fault("store-1")
    cases = [
        ("storeguard/v1/store-1/fault", b"{not json", "bad_json"),
        ("storeguard/v1/store-1/fault", json.dumps({"kind": "fault"}).encode(), "schema"),
        ("storeguard/v1/store-2/fault", good.to_bytes(), "store_mismatch"),
        ("storeguard/v1/Bad Store/fault", good.to_bytes(), "bad_topic"),
        ("storeguard/v1/store-1/fault", b" " * (MAX_PAYLOAD_BYTES + 1), "too_large"),
        ("storeguard/v1/store-1/fault", json.dumps({**json.loads(good.to_bytes()), "schema_version": 2}).encode(),
         "schema"),
    ]
    for topic, payload, reason in cases:
        result = ing.process(topic, payload)
        assert result.outcome is Outcome.REJECTED and result.reason == reason
    assert metrics.value(REJECTED, reason="bad_json") == 1
    assert metrics.value(REJECTED, reason="schema") == 2
    assert metrics.value(REJECTED, reason="store_mismatch") == 1
    assert metrics.value(REJECTED, reason="bad_topic") == 1
    assert metrics.value(REJECTED, reason="too_large") == 1
    assert not (tmp_path / "untouched" / "central.db").exists()
    assert 'storeguard_central_messages_rejected_total{reason="schema"} 2' in metrics.render()


def test_a_status_message_on_an_uplink_path_is_rejected(ingestor) -> None:  # type: ignore[no-untyped-def]
    ing, metrics = ingestor
    status = TicketStatus(store_id="store-1", ticket_id=1, ticket_number="T-000001", version=1, device_id="d1",
                          fault_code="x", status="new", priority=2, changed_at=datetime(2026, 1, 5, tzinfo=UTC))
    result = ing.process("storeguard/v1/store-1/ticket-status", status.to_bytes())
    assert result.outcome is Outcome.REJECTED and result.reason == "unexpected_kind"
    assert metrics.value(REJECTED, reason="unexpected_kind") == 1


def test_logged_once_per_reason_then_counted(ingestor, caplog) -> None:  # type: ignore[no-untyped-def]
    ing, metrics = ingestor
    caplog.set_level(logging.DEBUG, logger="central.ingest.processor")
    for _ in range(5):
        ing.process("storeguard/v1/store-1/fault", b"garbage")
    ing.process("storeguard/v1/store-1/fault", b"{}")
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert [("bad_json" in r.getMessage(), "schema" in r.getMessage()) for r in warnings] == [(True, False),
                                                                                             (False, True)]
    assert metrics.value(REJECTED, reason="bad_json") == 5
