"""MQTT contract v1, desired config and config acks: topics, hashing, validation, rejections."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest

from protocols.mqtt.messages import (
    ConfigAck,
    ConfigProblem,
    ContractError,
    DesiredConfig,
    RuleParameters,
    config_hash,
    parse_message,
)
from protocols.mqtt.topics import UPLINK_KINDS, TopicKind, is_retained, parse_topic, subscription, topic

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
CONFIG_TOPIC = "storeguard/v1/store-001/config"
ACK_TOPIC = "storeguard/v1/store-001/config-ack"
DEVICES = {"case-01": {"high_temperature": RuleParameters(limit=5.0, clear=3.0, delay_s=600)},
           "case-02": {"door_open": RuleParameters(enabled=False)}}


def desired(**changes: Any) -> DesiredConfig:
    devices = changes.pop("devices", DEVICES)
    fields: dict[str, Any] = dict(store_id="store-001", version=3, hash=config_hash(devices), issued_at=NOW,
                                  issued_by="fran", devices=devices)
    fields.update(changes)
    return DesiredConfig.model_validate(fields)


def ack(**changes: Any) -> ConfigAck:
    fields: dict[str, Any] = dict(store_id="store-001", version=3, hash="a" * 64, result="applied",
                                  applied_at=NOW, active_version=3)
    fields.update(changes)
    return ConfigAck.model_validate(fields)


def test_config_topics() -> None:
    assert topic("store-001", TopicKind.CONFIG) == CONFIG_TOPIC
    assert parse_topic(ACK_TOPIC) == ("store-001", TopicKind.CONFIG_ACK)
    assert TopicKind.CONFIG_ACK in UPLINK_KINDS and TopicKind.CONFIG not in UPLINK_KINDS
    assert subscription(TopicKind.CONFIG_ACK, "central") == "$share/central/storeguard/v1/+/config-ack"
    assert is_retained(CONFIG_TOPIC) and is_retained("storeguard/v1/store-001/health")
    assert not is_retained(ACK_TOPIC) and not is_retained("storeguard/v1/store-001/ticket-status")
    assert not is_retained("not/a/topic")


@pytest.mark.parametrize("message", [
    desired(),
    desired(devices={}),
    ack(),
    ack(result="unchanged", version=2, active_version=3),
    ack(result="rejected", version=4, active_version=3,
        error=ConfigProblem(device_id="case-09", message="unknown device 'case-09'")),
    ack(result="rejected", version=1, active_version=None,
        error=ConfigProblem(device_id="case-01", rule_code="high_temperature", field="clear", message="too high")),
])
def test_config_messages_round_trip_through_their_topics(message: DesiredConfig | ConfigAck) -> None:
    kind = TopicKind.CONFIG if isinstance(message, DesiredConfig) else TopicKind.CONFIG_ACK
    assert parse_message(topic("store-001", kind), message.to_bytes()) == message


def test_the_hash_is_of_the_canonical_devices_json() -> None:
    # key order, int vs float, and unset fields do not change it
    reordered = {"case-02": {"door_open": RuleParameters(enabled=False)},
                 "case-01": {"high_temperature": RuleParameters(delay_s=600.0, clear=3, limit=5)}}
    assert config_hash(reordered) == config_hash(DEVICES)
    assert config_hash({}) == "44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"  # sha256("{}")
    changed = {**DEVICES, "case-01": {"high_temperature": RuleParameters(limit=5.5, clear=3.0, delay_s=600)}}
    assert config_hash(changed) != config_hash(DEVICES)
    assert len(config_hash(DEVICES)) == 64


Mutation = Callable[[dict[str, Any]], bytes]


def _dump(data: dict[str, Any]) -> bytes:
    return json.dumps(data).encode()


def _rule(data: dict[str, Any], **params: Any) -> bytes:
    devices = {"case-01": {"high_temperature": params}}
    return _dump({**data, "devices": devices})


@pytest.mark.parametrize(("mutate", "reason"), [
    (lambda d: b"{", "bad_json"),
    (lambda d: _dump({**d, "hash": "0" * 64}), "schema"),  # not the hash of devices
    (lambda d: _dump({**d, "hash": "XYZ"}), "schema"),
    (lambda d: _dump({**d, "version": 0}), "schema"),
    (lambda d: _dump({**d, "issued_at": "2026-11-23T12:00:00"}), "schema"),  # naive
    (lambda d: _rule(d, limt=5.0), "schema"),  # a typo is not a default
    (lambda d: _rule(d, delay_s=-1), "schema"),
    (lambda d: _rule(d, delay_s=86_401), "schema"),
    (lambda d: _rule(d, limit="warm"), "schema"),
    (lambda d: _dump({**d, "devices": {"case 01": {}}}), "schema"),  # not an identifier
    (lambda d: _dump({**d, "devices": {"case-01": {"r": {"limit": 1}} | {f"r{i}": {} for i in range(100)}}}),
     "schema"),  # more rules than a device has
    (lambda d: _dump({**d, "store_id": "store-002"}), "store_mismatch"),
    (lambda d: _dump({**d, "kind": "config_ack"}), "schema"),
    (lambda d: _dump({k: v for k, v in d.items() if k != "sent_at"}), "schema"),
])
def test_bad_desired_configs_are_rejected_with_a_countable_reason(mutate: Mutation, reason: str) -> None:
    data = json.loads(desired().to_bytes())
    with pytest.raises(ContractError) as caught:
        parse_message(CONFIG_TOPIC, mutate(data))
    assert caught.value.reason == reason


def test_nan_and_nul_are_refused_in_a_config() -> None:
    text = desired().to_bytes().replace(b'"limit":5.0', b'"limit":NaN')
    with pytest.raises(ContractError) as caught:
        parse_message(CONFIG_TOPIC, text)
    assert caught.value.reason == "schema"
    with pytest.raises(ContractError):
        parse_message(CONFIG_TOPIC, desired(issued_by="fr\x00an").to_bytes())


@pytest.mark.parametrize(("changes", "why"), [
    ({"result": "rejected"}, "error is required"),
    ({"result": "applied", "error": {"message": "x"}}, "error is required"),
    ({"result": "applied", "active_version": 2}, "must be the active version"),
    ({"result": "unchanged", "active_version": None}, "unchanged means"),
    ({"result": "unchanged", "version": 4, "active_version": 3}, "unchanged means"),
    ({"result": "exploded"}, "result"),
    ({"error": {"message": ""}, "result": "rejected", "active_version": None}, "error.message"),
    ({"error": {"message": "x", "extra": 1}, "result": "rejected", "active_version": None}, "error.extra"),
])
def test_inconsistent_acks_are_rejected(changes: dict[str, Any], why: str) -> None:
    data = {**json.loads(ack().to_bytes()), **changes}
    with pytest.raises(ContractError) as caught:
        parse_message(ACK_TOPIC, json.dumps(data).encode())
    assert caught.value.reason == "schema" and why in caught.value.detail


def test_a_config_on_the_ack_topic_is_rejected() -> None:
    with pytest.raises(ContractError) as caught:
        parse_message(ACK_TOPIC, desired().to_bytes())
    assert caught.value.reason == "schema"
