"""MQTT contract v1: topics, payload validation and the rejections central counts."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from protocols.mqtt.messages import (
    ContractError,
    FaultEvent,
    StoreHealth,
    TelemetryBatch,
    TelemetryPoint,
    TicketStatus,
    parse_message,
)
from protocols.mqtt.topics import TopicError, TopicKind, parse_topic, subscription, topic

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


def fault(store: str = "store-001", **changes: object) -> FaultEvent:
    fields: dict[str, object] = dict(
        store_id=store, seq=7, device_id="case-01", device_model="dixell-xr75cx",
        fault_code="high_temperature", state="raised", severity="major",
        fault_class="food_safety", ticket_class="repair", occurred_at=NOW,
        evidence={"value": 9.4, "limit": 8.0, "above_s": 1800},
    )
    fields.update(changes)
    return FaultEvent.model_validate(fields)


def test_topics_carry_version_and_store() -> None:
    assert topic("store-001", TopicKind.FAULT) == "storeguard/v1/store-001/fault"
    assert parse_topic("storeguard/v1/store-001/ticket-status") == ("store-001", TopicKind.TICKET_STATUS)
    assert subscription(TopicKind.FAULT) == "storeguard/v1/+/fault"
    assert subscription(TopicKind.FAULT, "central") == "$share/central/storeguard/v1/+/fault"
    for bad in ["storeguard/v2/store-001/fault", "storeguard/v1/Store 1/fault", "storeguard/v1/s/nope", "x"]:
        with pytest.raises(TopicError):
            parse_topic(bad)
    with pytest.raises(TopicError):
        topic("../etc", TopicKind.FAULT)


@pytest.mark.parametrize(
    "message",
    [
        fault(),
        TelemetryBatch(store_id="store-001", seq=1, taken_at=NOW,
                       points=[TelemetryPoint(device_id="case-01", point="air_temp", value=3.4, unit="°C")]),
        StoreHealth(store_id="store-001", online=False),
        TicketStatus(store_id="store-001", ticket_id=1, ticket_number="T-000001", version=2,
                     device_id="case-01", fault_code="high_temperature", status="assigned",
                     priority=2, assignee="Ana", changed_at=NOW),
    ],
)
def test_every_kind_round_trips_through_its_topic(message) -> None:  # type: ignore[no-untyped-def]
    kinds = {"fault": TopicKind.FAULT, "telemetry": TopicKind.TELEMETRY,
             "health": TopicKind.HEALTH, "ticket_status": TopicKind.TICKET_STATUS}
    parsed = parse_message(topic("store-001", kinds[message.kind]), message.to_bytes())
    assert parsed == message
    assert parsed.schema_version == 1


def test_message_ids_are_unique() -> None:
    assert fault().message_id != fault().message_id


@pytest.mark.parametrize(
    ("mutate", "reason"),
    [
        (lambda d: b"{not json", "bad_json"),
        (lambda d: json.dumps({**d, "schema_version": 2}).encode(), "schema"),
        (lambda d: json.dumps({**d, "state": "exploded"}).encode(), "schema"),
        (lambda d: json.dumps({**d, "extra_field": 1}).encode(), "schema"),
        (lambda d: json.dumps({k: v for k, v in d.items() if k != "message_id"}).encode(), "schema"),
        (lambda d: json.dumps({**d, "occurred_at": "2026-11-23T12:00:00"}).encode(), "schema"),  # naive time
        (lambda d: json.dumps({**d, "store_id": "store-002"}).encode(), "store_mismatch"),
        (lambda d: b"x" * (512 * 1024 + 1), "too_large"),
        (lambda d: json.dumps({**d, "evidence": {"value": float("nan")}}).encode(), "schema"),
        (lambda d: json.dumps({**d, "evidence": {"value": float("inf")}}).encode(), "schema"),
        (lambda d: json.dumps({**d, "description": "door\x00open"}).encode(), "schema"),
        (lambda d: json.dumps({**d, "seq": 2**31}).encode(), "schema"),
        (lambda d: json.dumps({**d, "seq": -1}).encode(), "schema"),
    ],
)
def test_bad_payloads_are_rejected_with_a_countable_reason(mutate, reason) -> None:  # type: ignore[no-untyped-def]
    data = json.loads(fault().to_bytes())
    with pytest.raises(ContractError) as caught:
        parse_message("storeguard/v1/store-001/fault", mutate(data))
    assert caught.value.reason == reason


def test_a_payload_on_the_wrong_kind_of_topic_is_rejected() -> None:
    with pytest.raises(ContractError) as caught:
        parse_message("storeguard/v1/store-001/telemetry", fault().to_bytes())
    assert caught.value.reason == "schema"
    with pytest.raises(ContractError) as caught:
        parse_message("storeguard/v1/store-001/bogus", fault().to_bytes())
    assert caught.value.reason == "bad_topic"


def test_telemetry_values_must_be_finite() -> None:
    batch = {"store_id": "store-001", "message_id": "0123456789", "sent_at": NOW.isoformat(), "seq": 1,
             "taken_at": NOW.isoformat(), "points": [{"device_id": "case-01", "point": "air_temp", "value": 1.0}]}
    parse_message("storeguard/v1/store-001/telemetry", json.dumps(batch).encode())
    batch["points"][0]["value"] = float("-inf")
    with pytest.raises(ContractError) as caught:
        parse_message("storeguard/v1/store-001/telemetry", json.dumps(batch).encode())
    assert caught.value.reason == "schema"
