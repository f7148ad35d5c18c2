"""Threshold scopes on SQLite and PostgreSQL: inheritance, validation, versions, dry run, compile, rollout."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from fastapi.testclient import TestClient
from sqlalchemy import select, text

from central.db import Database, alembic_config, create_db_engine, migrate
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

DIXELL, CAREL = "dixell-xr75cx", "carel-ir33-wbref"
TH = "/api/v1/thresholds"
MODEL = f"{TH}/models/{DIXELL}"
STORE1 = f"{TH}/stores/store-1/models/{DIXELL}"
CASE1 = f"{TH}/stores/store-1/devices/case-01"
STORES = ("stores:\n  - {id: store-1, name: Main Street, region: north}\n"
          "  - {id: store-2, name: Harbour, region: south}\n  - {id: store-3, name: Hill, region: north}\n")


@pytest.fixture
def seed_path(tmp_path: Path, password_hash: str) -> Path:
    """The shared seed (fay is facilities) plus three stores in two regions."""
    path = tmp_path / "seed.yaml"
    path.write_text(STORES + seed_yaml(password_hash))
    return path


def runtime(client: TestClient) -> Any:
    return client.app.state.runtime  # type: ignore[attr-defined]


def login(client: TestClient, username: str = "fay") -> dict[str, str]:
    response = client.post("/api/v1/auth/token", json={"username": username, "password": PASSWORD})
    assert response.status_code == 200, response.text
    return {"Authorization": f"Bearer {response.json()['access_token']}"}


def deliver(client: TestClient, message: StoreHealth | ConfigAck, kind: TopicKind) -> Any:
    ingestor: Ingestor = runtime(client).ingestor
    return ingestor.process(topic(message.store_id, kind), message.to_bytes())


def announce(client: TestClient, store_id: str, *devices: tuple[str, str]) -> None:
    health = StoreHealth(store_id=store_id, online=True, sent_at=T0,
                         devices=[DeviceHealth(device_id=d, device_model=m, online=True) for d, m in devices])
    deliver(client, health, TopicKind.HEALTH)


def chain(client: TestClient) -> None:
    """store-1: two dixell cases; store-2: one dixell and one carel case; store-3: nothing known."""
    announce(client, "store-1", ("case-01", DIXELL), ("case-02", DIXELL))
    announce(client, "store-2", ("case-01", DIXELL), ("case-05", CAREL))


def published(client: TestClient) -> list[DesiredConfig]:
    database: Database = runtime(client).database
    with database.session() as session:
        rows = session.scalars(select(OutboundMessage).order_by(OutboundMessage.id)).all()
    found = [parse_message(row.topic, row.payload.encode()) for row in rows]
    return [m for m in found if isinstance(m, DesiredConfig)]


def change(client: TestClient, method: str, url: str, rules: dict[str, Any] | None = None, *,
           reason: str = "test", expect: int = 201, user: str = "fay") -> Any:
    body = None if method == "DELETE" else {"reason": reason, "rules": rules or {}}
    if method == "DELETE":
        url += f"?reason={reason}"
    response = client.request(method, url, json=body, headers=login(client, user))
    assert response.status_code == expect, response.text
    return response.json()


def fields(client: TestClient, url: str, rule: str = "high_temperature") -> dict[str, tuple[Any, str]]:
    response = client.get(url, headers=login(client))
    assert response.status_code == 200, response.text
    return {name: (f["value"], f["source"]) for name, f in response.json()["effective"][rule]["fields"].items()}


def desired(client: TestClient, store_id: str) -> Any:
    return client.get(f"/api/v1/stores/{store_id}/config", headers=login(client)).json()["desired"]


def test_scopes_inherit_field_by_field_and_say_where_each_value_comes_from(client: TestClient) -> None:
    chain(client)
    change(client, "PUT", MODEL, {"high_temperature": {"limit": 7.0, "delay_s": 900}})
    change(client, "PUT", STORE1, {"high_temperature": {"delay_s": 600}})
    change(client, "PUT", CASE1, {"high_temperature": {"clear": 4.0}})

    case1 = fields(client, CASE1)
    assert case1["limit"] == (7.0, "model") and case1["delay_s"] == (600.0, "store")
    assert case1["clear"] == (4.0, "device") and case1["clear_delay_s"] == (0.0, "profile")
    assert case1["enabled"] == (True, "profile")
    assert fields(client, f"{TH}/stores/store-1/devices/case-02")["clear"] == (6.0, "profile")
    assert fields(client, f"{TH}/stores/store-2/devices/case-01")["delay_s"] == (900.0, "model")
    assert fields(client, STORE1)["delay_s"] == (600.0, "store")  # down to the store scope
    assert fields(client, MODEL)["delay_s"] == (900.0, "model")
    body = client.get(CASE1, headers=login(client)).json()
    assert body["overrides"] == {"high_temperature": {"clear": 4.0}} and body["model"] == DIXELL
    assert body["effective"]["high_temperature"]["unit"] == "°C"
    assert body["effective"]["high_temperature"]["plausible"] == [-50.0, 110.0]

    # each store runs the merged overrides of its devices (fields no scope sets stay the profile's)
    assert desired(client, "store-1")["devices"] == {
        "case-01": {"high_temperature": {"limit": 7.0, "clear": 4.0, "delay_s": 600.0}},
        "case-02": {"high_temperature": {"limit": 7.0, "delay_s": 600.0}}}
    assert desired(client, "store-2")["devices"] == {"case-01": {"high_temperature": {"limit": 7.0, "delay_s": 900.0}}}
    newest = {m.store_id: m for m in published(client)}
    assert newest["store-1"].devices["case-01"]["high_temperature"].clear == 4.0


@pytest.mark.parametrize(("url", "rules", "where", "text"), [
    (MODEL, {"warm_cabinet": {"limit": 5}}, f"model:{DIXELL}/warm_cabinet", "no rule"),
    (MODEL, {"high_temperature": {"limit": 5.0}}, f"model:{DIXELL}/high_temperature/limit", "above the high limit"),
    (MODEL, {"high_temperature": {"limit": 200.0}}, f"model:{DIXELL}/high_temperature/limit", "plausible range"),
    (MODEL, {"low_temperature": {"clear": -5.0}}, f"model:{DIXELL}/low_temperature/clear", "below the low limit"),
    (MODEL, {"door_open": {"limit": 1.0}}, f"model:{DIXELL}/door_open/limit", "takes no"),
    (STORE1, {"high_temperature": {"clear": 9.0}}, f"store:store-1/{DIXELL}/high_temperature/clear", "above"),
    (CASE1, {"low_temperature": {"limit": 1.0}}, "device:store-1/case-01/low_temperature/limit", "below"),
    (f"{TH}/models/acme-9000", {"high_temperature": {"limit": 5}}, "model:acme-9000", "no profile"),
    (f"{TH}/stores/store-2/devices/case-09", {"high_temperature": {"limit": 5}}, "device:store-2/case-09",
     "unknown device"),
])
def test_invalid_changes_are_422_naming_scope_target_rule_and_field(
        client: TestClient, url: str, rules: dict[str, Any], where: str, text: str) -> None:  # fmt: skip
    chain(client)
    body = change(client, "PUT", url, rules, expect=422)
    assert body["code"] == "invalid_config" and body["detail"].startswith(where) and text in body["detail"]
    [problem] = body["problems"]
    parts = (f"{problem['scope']}:{problem['target']}", problem["rule_code"], problem["field"])
    assert "/".join(p for p in parts if p) == where
    assert client.get(f"{TH}/changes", headers=login(client)).json() == []
    assert published(client) == []


def test_a_model_change_that_breaks_one_device_names_that_device(client: TestClient) -> None:
    chain(client)
    change(client, "PUT", CASE1, {"high_temperature": {"clear": 4.0}})
    body = change(client, "PATCH", MODEL, {"high_temperature": {"limit": 3.5, "clear": 3.0}}, expect=422)
    assert [(p["scope"], p["target"], p["rule_code"], p["field"]) for p in body["problems"]] == [
        ("device", "store-1/case-01", "high_temperature", "clear")]
    assert "must not be above the high limit 3.5" in body["problems"][0]["message"]


def test_bad_bodies_are_422(client: TestClient) -> None:
    chain(client)
    fay = login(client)
    negative = client.put(MODEL, headers=fay, json={"reason": "x", "rules": {"high_temperature": {"delay_s": -1}}})
    assert negative.status_code == 422 and "delay_s" in negative.json()["detail"][0]["loc"]
    assert client.put(MODEL, headers=fay, json={"rules": {}}).status_code == 422  # no reason
    assert client.delete(MODEL, headers=fay).status_code == 422  # no reason
    bad_target = {"op": "put", "target": {"scope": "store", "model": DIXELL}, "reason": "x", "rules": {}}
    assert client.post(f"{TH}/dry-run", headers=fay, json=bad_target).status_code == 422
    assert client.put(f"{TH}/stores/nowhere/models/{DIXELL}", headers=fay,
                      json={"reason": "x", "rules": {}}).status_code == 404


def test_every_change_is_a_chain_wide_version_with_author_reason_and_diff(client: TestClient, clock: Any) -> None:
    chain(client)
    first = change(client, "PUT", MODEL, {"high_temperature": {"limit": 7.0}}, reason="summer")["change"]
    assert first["version"] == 1 and first["author"] == "fay" and first["reason"] == "summer"
    assert first["diff"] == [{"scope": "model", "target": DIXELL, "rule": "high_temperature", "field": "limit",
                              "old": None, "new": 7.0}]
    assert {s["store_id"] for s in first["stores"]} == {"store-1", "store-2"}
    clock.advance(60)
    second = change(client, "PATCH", STORE1, {"high_temperature": {"delay_s": 600, "clear": 5.0}},
                    user="adam")["change"]
    assert second["version"] == 2 and second["author"] == "adam"
    assert [(d["field"], d["old"], d["new"]) for d in second["diff"]] == [("clear", None, 5.0),
                                                                          ("delay_s", None, 600.0)]
    third = change(client, "PATCH", STORE1, {"high_temperature": {"clear": None}})["change"]  # null removes a field
    assert [(d["scope"], d["target"], d["field"], d["old"], d["new"]) for d in third["diff"]] == [
        ("store", f"store-1/{DIXELL}", "clear", 5.0, None)]
    assert client.get(STORE1, headers=login(client)).json()["overrides"] == {"high_temperature": {"delay_s": 600.0}}
    # the same again changes nothing: no version
    same = change(client, "PUT", MODEL, {"high_temperature": {"limit": 7}}, expect=200)
    assert same == {"created": False, "change": None}
    fourth = change(client, "DELETE", STORE1)["change"]
    assert fourth["version"] == 4 and fourth["diff"][0]["old"] == 600.0 and fourth["diff"][0]["new"] is None

    history = client.get(f"{TH}/changes", headers=login(client, "dora")).json()
    assert [h["version"] for h in history] == [4, 3, 2, 1]
    assert history[-1] | {"created_at": None} == {"version": 1, "author": "fay", "created_at": None,
                                                  "reason": "summer", "fields_changed": 1, "stores_issued": 2}
    assert [h["version"] for h in client.get(f"{TH}/changes?before=3&limit=1", headers=login(client)).json()] == [2]
    detail = client.get(f"{TH}/changes/2", headers=login(client)).json()
    assert detail["diff"] == second["diff"] and detail["request"]["op"] == "patch"
    assert client.get(f"{TH}/changes/99", headers=login(client)).status_code == 404


def test_a_dry_run_shows_the_effect_and_writes_nothing(client: TestClient) -> None:
    chain(client)
    change(client, "PUT", CASE1, {"high_temperature": {"limit": 5.0, "clear": 4.0}})
    before = (len(published(client)), client.get(f"{TH}/changes", headers=login(client)).json())
    body = {"op": "patch", "target": {"scope": "model", "model": DIXELL}, "reason": "colder",
            "rules": {"high_temperature": {"limit": 6.5}}}
    response = client.post(f"{TH}/dry-run", headers=login(client), json=body)
    assert response.status_code == 200, response.text
    run = response.json()
    assert run["valid"] is True and run["problems"] == []
    assert run["diff"] == [{"scope": "model", "target": DIXELL, "rule": "high_temperature", "field": "limit",
                            "old": None, "new": 6.5}]
    impacts = {s["store_id"]: s for s in run["stores"]}
    assert set(impacts) == {"store-1", "store-2"}  # store-1/case-01 keeps its own limit: only case-02 changes
    assert [d["device_id"] for d in impacts["store-1"]["devices"]] == ["case-02"]
    [limit] = impacts["store-1"]["devices"][0]["changes"]
    assert limit == {"rule": "high_temperature", "field": "limit", "before": 8.0, "after": 6.5,
                     "source_before": "profile", "source_after": "model"}
    assert impacts["store-2"]["region"] == "south" and impacts["store-2"]["new_version"] is True
    assert impacts["store-2"]["current_version"] is None
    assert run["devices_affected"] == 2 and run["store_versions"] == 2
    after = (len(published(client)), client.get(f"{TH}/changes", headers=login(client)).json())
    assert after == before
    assert client.get(MODEL, headers=login(client)).json()["overrides"] == {}

    broken = {**body, "rules": {"high_temperature": {"limit": 4.5, "clear": 7.0}}}
    bad = client.post(f"{TH}/dry-run", headers=login(client), json=broken).json()
    assert bad["valid"] is False  # the devices inheriting it fail the same way: one problem
    assert [(p["target"], p["field"]) for p in bad["problems"]] == [(DIXELL, "clear")]
    assert len(published(client)) == before[0]
    # the same body applies it
    applied = client.post(f"{TH}/changes", headers=login(client), json=body)
    assert applied.status_code == 201 and applied.json()["change"]["diff"] == run["diff"]


def test_only_stores_whose_compiled_config_changes_get_a_version(client: TestClient) -> None:
    chain(client)
    carel = change(client, "PUT", f"{TH}/models/{CAREL}", {"high_temperature": {"delay_s": 120}})["change"]
    assert [s["store_id"] for s in carel["stores"]] == ["store-2"]  # store-1 has no carel device
    v1 = desired(client, "store-1")
    assert v1 is None
    for device in ("case-01", "case-02"):
        change(client, "PUT", f"{TH}/stores/store-1/devices/{device}", {"high_temperature": {"limit": 5.0,
                                                                                           "clear": 4.0}})
    store1 = desired(client, "store-1")
    count = len(published(client))
    # every dixell of store-1 has its own limit: a model-wide limit changes nothing there
    model = change(client, "PUT", MODEL, {"high_temperature": {"limit": 7.0}})["change"]
    assert [s["store_id"] for s in model["stores"]] == ["store-2"]
    assert desired(client, "store-1") == store1
    assert [m.store_id for m in published(client)[count:]] == ["store-2"]
    # a store-scope change reaches that store only
    store = change(client, "PATCH", STORE1, {"high_temperature": {"delay_s": 60}})["change"]
    assert [s["store_id"] for s in store["stores"]] == ["store-1"]
    assert desired(client, "store-1")["version"] == store1["version"] + 1


def test_the_store_put_writes_the_device_scope_through_the_same_compile(client: TestClient) -> None:
    chain(client)
    change(client, "PUT", MODEL, {"high_temperature": {"limit": 7.0}})
    fay = login(client)
    put = client.put("/api/v1/stores/store-1/config", headers=fay,
                     json={"devices": {"case-01": {"high_temperature": {"clear": 4.0}}}, "reason": "case 1 warm"})
    assert put.status_code == 201, put.text
    assert put.json()["desired"]["devices"]["case-01"] == {"high_temperature": {"limit": 7.0, "clear": 4.0}}
    assert client.get(CASE1, headers=fay).json()["overrides"] == {"high_temperature": {"clear": 4.0}}
    [last] = client.get(f"{TH}/changes?limit=1", headers=fay).json()
    assert last["reason"] == "case 1 warm"
    # a device left out loses its device scope; the model scope still applies
    cleared = client.put("/api/v1/stores/store-1/config", headers=fay, json={"devices": {}})
    assert cleared.status_code == 201
    assert cleared.json()["desired"]["devices"]["case-01"] == {"high_temperature": {"limit": 7.0}}
    assert client.get(CASE1, headers=fay).json()["overrides"] == {}
    # invalid only with the model scope merged in: the store PUT validates the whole chain
    bad = client.put("/api/v1/stores/store-1/config", headers=fay,
                     json={"devices": {"case-01": {"high_temperature": {"clear": 7.5}}}})
    assert bad.status_code == 422 and bad.json()["problem"]["field"] == "clear"


def ack(store_id: str, version: int, digest: str, result: ConfigResult, *, active: int | None, at_s: float = 0,
        error: ConfigProblem | None = None) -> ConfigAck:
    return ConfigAck(store_id=store_id, version=version, hash=digest, result=result, error=error,
                     applied_at=T0 + timedelta(seconds=at_s), active_version=active)


def test_rollout_shows_each_store_up_to_date_pending_or_failed_with_the_reason(client: TestClient) -> None:
    chain(client)
    change(client, "PUT", MODEL, {"high_temperature": {"limit": 7.0}})
    one, two = desired(client, "store-1"), desired(client, "store-2")
    deliver(client, ack("store-1", one["version"], one["hash"], ConfigResult.APPLIED, active=one["version"],
                        at_s=5), TopicKind.CONFIG_ACK)
    problem = ConfigProblem(device_id="case-01", rule_code="high_temperature", message="device not on the bus")
    deliver(client, ack("store-2", two["version"], two["hash"], ConfigResult.REJECTED, active=None, at_s=5,
                        error=problem), TopicKind.CONFIG_ACK)
    dora = login(client, "dora")
    rollout = client.get(f"{TH}/rollout", headers=dora).json()
    assert rollout["counts"] == {"up_to_date": 1, "pending": 0, "failed": 1, "unconfigured": 1}
    states = {s["store_id"]: s for s in rollout["stores"]}
    assert states["store-1"]["state"] == "up_to_date" and states["store-1"]["applied_version"] == one["version"]
    assert states["store-1"]["desired_hash"] == one["hash"]
    assert states["store-2"]["state"] == "failed" and states["store-2"]["error"]["message"] == "device not on the bus"
    assert states["store-3"]["state"] == "unconfigured" and states["store-3"]["desired_version"] is None

    change(client, "PATCH", STORE1, {"high_temperature": {"delay_s": 60}})
    failed = client.get(f"{TH}/rollout?state=failed", headers=dora).json()
    assert [s["store_id"] for s in failed["stores"]] == ["store-2"]
    assert failed["counts"] == {"up_to_date": 0, "pending": 1, "failed": 1, "unconfigured": 1}
    north = client.get(f"{TH}/rollout?region=north", headers=dora).json()
    assert [(s["store_id"], s["state"]) for s in north["stores"]] == [("store-1", "pending"),
                                                                      ("store-3", "unconfigured")]
    assert north["counts"]["failed"] == 0
    assert client.get(f"{TH}/rollout?state=lost", headers=dora).status_code == 422


@pytest.mark.parametrize(("username", "read", "edit"), [
    ("fay", 200, 201), ("adam", 200, 201), ("dora", 200, 403), ("sunny", 200, 403), ("reggie", 200, 403),
    ("tina", 403, 403), ("stan", 403, 403),
])
def test_facilities_and_admins_edit_threshold_readers_read(client: TestClient, username: str, read: int,
                                                           edit: int) -> None:
    chain(client)
    headers = login(client, username)
    assert client.get(f"{TH}/rollout", headers=headers).status_code == read
    assert client.get(MODEL, headers=headers).status_code == read
    body = {"reason": "r", "rules": {"high_temperature": {"delay_s": 60}}}
    response = client.patch(MODEL, headers=headers, json=body)
    assert response.status_code == edit
    dry = {"op": "delete", "target": {"scope": "model", "model": DIXELL}, "reason": "r"}
    assert client.post(f"{TH}/dry-run", headers=headers, json=dry).status_code == (200 if edit == 201 else 403)
    assert client.get(f"{TH}/rollout").status_code == 401


@pytest.mark.empty_database
def test_the_migration_turns_each_stores_current_config_into_device_scope_rows(database_url: str) -> None:
    engine = create_db_engine(database_url)
    try:
        with engine.begin() as connection:
            command.upgrade(alembic_config(connection), "0010")
        now = T0.replace(tzinfo=None) if engine.dialect.name == "sqlite" else T0
        with engine.begin() as connection:
            connection.execute(text("INSERT INTO stores (id, name, region, online, gateway_version, created_at) "
                                    "VALUES ('s1', 's1', '', true, '', :now)"), {"now": now})
            for version, devices in ((1, '{"d1": {"high_temperature": {"limit": 9.0}}}'),
                                     (2, '{"d1": {"high_temperature": {"limit": 5.0}, "low_temperature": {}}}')):
                connection.execute(text(
                    "INSERT INTO store_config_versions (store_id, version, hash, devices, issued_by, issued_at, "
                    "message_id) VALUES ('s1', :version, :hash, :devices, 'fran', :now, 'm')"),
                    {"version": version, "hash": "0" * 64, "devices": devices, "now": now})
        migrate(database_url)
        with engine.connect() as connection:
            rows = connection.execute(text("SELECT scope, model, store_id, device_id, rule_code, params, "
                                           "change_version FROM threshold_overrides")).all()
    finally:
        engine.dispose()
    assert [tuple(r[:5]) + (r[6],) for r in rows] == [("device", "", "s1", "d1", "high_temperature", 0)]
    params = rows[0][5]
    assert (params if isinstance(params, dict) else json.loads(params)) == {"limit": 5.0}
