"""The store configuration API on SQLite and PostgreSQL: roles, validation, versions, acks."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from central.clock import FakeClock
from central.db import Database
from central.ingest.processor import Ingestor
from central.outbox.models import OutboundMessage
from protocols.mqtt.messages import (
    ConfigAck,
    ConfigProblem,
    ConfigResult,
    DesiredConfig,
    DeviceHealth,
    StoreHealth,
    parse_message,
)
from protocols.mqtt.topics import TopicKind, topic
from tests.integration.central.support import PASSWORD, T0, seed_yaml

STORE = "store-1"
URL = f"/api/v1/stores/{STORE}/config"
HIGH = {"case-01": {"high_temperature": {"limit": 5.0, "clear": 3.0, "delay_s": 600}}}


@pytest.fixture
def seed_path(tmp_path: Path, password_hash: str) -> Path:
    """The shared seed plus a facilities user."""
    path = tmp_path / "seed.yaml"
    path.write_text(seed_yaml(password_hash) + f"  - username: fran\n    display_name: Fran Facilities\n"
                                               f"    role: facilities\n    password_hash: \"{password_hash}\"\n")
    return path


def runtime(client: TestClient) -> Any:
    return client.app.state.runtime  # type: ignore[attr-defined]


def login(client: TestClient, username: str) -> dict[str, str]:
    response = client.post("/api/v1/auth/token", json={"username": username, "password": PASSWORD})
    assert response.status_code == 200, response.text
    return {"Authorization": f"Bearer {response.json()['access_token']}"}


def deliver(client: TestClient, message: StoreHealth | ConfigAck, kind: TopicKind) -> Any:
    ingestor: Ingestor = runtime(client).ingestor
    return ingestor.process(topic(message.store_id, kind), message.to_bytes())


def known_store(client: TestClient, *devices: tuple[str, str]) -> None:
    """The store announced its devices (and their models) in a health message."""
    pairs = devices or (("case-01", "dixell-xr75cx"), ("case-02", "dixell-xr75cx"))
    health = StoreHealth(store_id=STORE, online=True, sent_at=T0,
                         devices=[DeviceHealth(device_id=d, device_model=m, online=True) for d, m in pairs])
    deliver(client, health, TopicKind.HEALTH)


def published(client: TestClient) -> list[DesiredConfig]:
    database: Database = runtime(client).database
    with database.session() as session:
        rows = session.scalars(select(OutboundMessage).order_by(OutboundMessage.id)).all()
    found = [parse_message(row.topic, row.payload.encode()) for row in rows]
    return [m for m in found if isinstance(m, DesiredConfig)]


def test_facilities_puts_a_version_that_is_published_for_the_store(client: TestClient) -> None:
    known_store(client)
    fran = login(client, "fran")
    response = client.put(URL, headers=fran, json={"devices": HIGH})
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["created"] is True and body["in_sync"] is False and body["applied_version"] is None
    desired = body["desired"]
    assert desired["version"] == 1 and desired["issued_by"] == "fran"
    assert desired["devices"] == {"case-01": {"high_temperature": {"limit": 5.0, "clear": 3.0, "delay_s": 600.0}}}
    [message] = published(client)
    assert message.version == 1 and message.hash == desired["hash"] and message.store_id == STORE
    assert message.devices["case-01"]["high_temperature"].limit == 5.0
    assert client.get(URL, headers=login(client, "tina")).json()["desired"]["version"] == 1  # anyone may read


def test_identical_content_makes_no_new_version(client: TestClient, clock: FakeClock) -> None:
    known_store(client)
    admin = login(client, "adam")
    first = client.put(URL, headers=admin, json={"devices": HIGH}).json()
    clock.advance(60)
    # the same set, spelled differently: an int for a float, an override that changes nothing
    same = {"case-01": {"high_temperature": {"delay_s": 600, "clear": 3, "limit": 5}},
            "case-02": {"low_temperature": {}}}
    again = client.put(URL, headers=admin, json={"devices": same})
    assert again.status_code == 200 and again.json()["created"] is False
    assert again.json()["desired"] == first["desired"]
    changed = client.put(URL, headers=admin, json={"devices": {}})
    assert changed.status_code == 201 and changed.json()["desired"]["version"] == 2
    assert [m.version for m in published(client)] == [1, 2]
    assert published(client)[1].devices == {}


@pytest.mark.parametrize("username", ["tina", "dora", "stan"])
def test_technicians_dispatchers_and_store_staff_may_not_put(client: TestClient, username: str) -> None:
    known_store(client)
    response = client.put(URL, headers=login(client, username), json={"devices": HIGH})
    assert response.status_code == 403
    assert published(client) == []


@pytest.mark.parametrize(("devices", "names"), [
    ({"case-09": {"high_temperature": {"limit": 5}}}, ["case-09", "unknown device"]),
    ({"case-03": {"high_temperature": {"limit": 5}}}, ["case-03", "not known yet"]),
    ({"lane-01": {"high_temperature": {"limit": 5}}}, ["lane-01", "acme-9000"]),
    ({"case-01": {"warm_cabinet": {"limit": 5}}}, ["case-01/warm_cabinet", "no rule"]),
    ({"case-01": {"high_temperature": {"clear": 9.0}}}, ["case-01/high_temperature/clear", "above the high limit"]),
    ({"case-01": {"low_temperature": {"limit": 1.0}}}, ["case-01/low_temperature/limit", "below the low limit"]),
    ({"case-01": {"door_open": {"limit": 1.0}}}, ["case-01/door_open/limit", "takes no"]),
])
def test_invalid_sets_are_422_naming_the_problem(client: TestClient, devices: dict[str, Any],
                                                 names: list[str]) -> None:
    known_store(client, ("case-01", "dixell-xr75cx"), ("lane-01", "acme-9000"))
    ingestor: Ingestor = runtime(client).ingestor
    telemetry = {"schema_version": 1, "message_id": "t" * 12, "store_id": STORE, "sent_at": T0.isoformat(),
                 "kind": "telemetry", "seq": 1, "taken_at": T0.isoformat(),
                 "points": [{"device_id": "case-03", "point": "air_temp", "value": 3.0}]}
    ingestor.process(topic(STORE, TopicKind.TELEMETRY), json.dumps(telemetry).encode())  # a model-less device
    response = client.put(URL, headers=login(client, "fran"), json={"devices": devices})
    assert response.status_code == 422, response.text
    assert response.json()["code"] == "invalid_config"
    for name in names:
        assert name in response.json()["detail"]
    problem = response.json()["problem"]
    assert "/".join(v for v in (problem["device_id"], problem["rule_code"], problem["field"]) if v) == names[0]
    assert published(client) == []


def test_bad_bodies_are_422_and_unknown_stores_404(client: TestClient) -> None:
    known_store(client)
    fran = login(client, "fran")
    assert client.put(URL, headers=fran, json={"devices": {"case-01": {"high_temperature": {"limt": 5}}}}
                      ).status_code == 422
    assert client.put(URL, headers=fran, json={"devices": {"case-01": {"high_temperature": {"delay_s": -1}}}}
                      ).status_code == 422
    assert client.put(URL, headers=fran, json={}).status_code == 422
    assert client.put("/api/v1/stores/nowhere/config", headers=fran, json={"devices": {}}).status_code == 404
    assert client.get("/api/v1/stores/nowhere/config", headers=fran).status_code == 404
    assert client.get(URL).status_code == 401


def ack(version: int, digest: str, result: ConfigResult, *, active: int | None, at_s: float = 0,
        error: ConfigProblem | None = None) -> ConfigAck:
    return ConfigAck(store_id=STORE, version=version, hash=digest, result=result, error=error,
                     applied_at=T0 + timedelta(seconds=at_s), active_version=active)


def test_acks_update_the_applied_version_and_sync_status(client: TestClient) -> None:
    known_store(client)
    fran = login(client, "fran")
    desired = client.put(URL, headers=fran, json={"devices": HIGH}).json()["desired"]
    applied = ack(1, desired["hash"], ConfigResult.APPLIED, active=1, at_s=10)
    assert deliver(client, applied, TopicKind.CONFIG_ACK).outcome.value == "accepted"
    assert deliver(client, applied, TopicKind.CONFIG_ACK).outcome.value == "duplicate"  # idempotent
    state = client.get(URL, headers=fran).json()
    assert state["in_sync"] is True and state["applied_version"] == 1
    assert state["last_ack"]["result"] == "applied"

    v2 = client.put(URL, headers=fran, json={"devices": {"case-02": {"door_open": {"delay_s": 30}}}}).json()
    assert client.get(URL, headers=fran).json()["in_sync"] is False
    problem = ConfigProblem(device_id="case-02", message="unknown device 'case-02'")
    deliver(client, ack(2, v2["desired"]["hash"], ConfigResult.REJECTED, active=1, at_s=20, error=problem),
            TopicKind.CONFIG_ACK)
    state = client.get(URL, headers=fran).json()
    assert state["in_sync"] is False and state["applied_version"] == 1
    assert state["last_ack"]["result"] == "rejected" and state["last_ack"]["error"]["device_id"] == "case-02"
    # a late redelivery of an older ack does not roll the status back
    deliver(client, ack(1, desired["hash"], ConfigResult.UNCHANGED, active=1, at_s=5), TopicKind.CONFIG_ACK)
    assert client.get(URL, headers=fran).json()["last_ack"]["result"] == "rejected"


def test_a_store_running_a_newer_version_than_central_knows_gets_a_higher_one(client: TestClient) -> None:
    """E.g. central's database was restored from a backup: the store would ignore an older version."""
    known_store(client)
    deliver(client, ack(7, "0" * 64, ConfigResult.UNCHANGED, active=7), TopicKind.CONFIG_ACK)
    body = client.put(URL, headers=login(client, "fran"), json={"devices": HIGH}).json()
    assert body["desired"]["version"] == 8


def test_a_malformed_ack_is_rejected_not_applied(client: TestClient) -> None:
    known_store(client)
    ingestor: Ingestor = runtime(client).ingestor
    bad = ack(1, "0" * 64, ConfigResult.APPLIED, active=1).model_dump(mode="json")
    bad["result"] = "rejected"  # without an error
    result = ingestor.process(topic(STORE, TopicKind.CONFIG_ACK), json.dumps(bad).encode())
    assert result.outcome.value == "rejected" and result.reason == "schema"
    assert client.get(URL, headers=login(client, "fran")).json()["last_ack"] is None


def test_reconnecting_requeues_the_newest_config_only_for_stores_not_running_it(client: TestClient,
                                                                                 clock: FakeClock) -> None:
    """A broker restarted without persistence lost its retained configs: central queues them again."""
    from central.store_config import service

    known_store(client)
    fran = login(client, "fran")
    first = client.put(URL, headers=fran, json={"devices": HIGH}).json()["desired"]
    database: Database = runtime(client).database
    with database.session() as session, session.begin():
        assert service.republish_unsynced(session=session, now=clock.now()) == 1  # not acked yet
    again = published(client)[-1]
    assert (again.version, again.hash, len(published(client))) == (1, first["hash"], 2)
    assert again.devices["case-01"]["high_temperature"].limit == 5.0
    deliver(client, ack(1, first["hash"], ConfigResult.APPLIED, active=1, at_s=10), TopicKind.CONFIG_ACK)
    with database.session() as session, session.begin():
        assert service.republish_unsynced(session=session, now=clock.now()) == 0  # the store runs it
    assert len(published(client)) == 2
