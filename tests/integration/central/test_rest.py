"""The REST API with auth: the technician's flow, permissions and the outbound status trail."""

from __future__ import annotations

from datetime import timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from central.auth.models import ApiToken, User
from central.clock import FakeClock
from central.db import Database
from central.ingest.processor import Ingestor
from protocols.mqtt.messages import TicketStatusValue as S
from tests.integration.central.support import PASSWORD, SEED_USERS, T0, fault, send, statuses


def runtime(client: TestClient):  # type: ignore[no-untyped-def]
    return client.app.state.runtime  # type: ignore[attr-defined]


def ingest(client: TestClient, *messages) -> None:  # type: ignore[no-untyped-def]
    ingestor: Ingestor = runtime(client).ingestor
    for message in messages:
        send(ingestor, message)


def login(client: TestClient, username: str) -> dict[str, str]:
    response = client.post("/api/v1/auth/token", json={"username": username, "password": PASSWORD})
    assert response.status_code == 200, response.text
    return {"Authorization": f"Bearer {response.json()['access_token']}"}


def test_login_and_me(client: TestClient, clock: FakeClock) -> None:
    response = client.post("/api/v1/auth/token", json={"username": "tina", "password": PASSWORD})
    body = response.json()
    assert body["token_type"] == "bearer"
    assert body["expires_at"].startswith((T0 + timedelta(hours=12)).strftime("%Y-%m-%dT%H:%M"))
    me = client.get("/api/v1/me", headers={"Authorization": f"Bearer {body['access_token']}"}).json()
    assert me == {"id": me["id"], "username": "tina", "display_name": "Tina Tech", "role": "technician"}
    # only a digest of the token is stored
    database: Database = runtime(client).database
    with database.session() as session:
        stored = session.scalars(select(ApiToken.token_hash)).all()
    assert body["access_token"] not in stored and len(stored) == 1 and len(stored[0]) == 64


@pytest.mark.parametrize("body", [{"username": "tina", "password": "wrong"}, {"username": "nobody", "password": "x"},
                                  {"username": "olga", "password": PASSWORD}])  # olga is inactive
def test_bad_logins_are_401_with_one_message(client: TestClient, body: dict[str, str]) -> None:
    response = client.post("/api/v1/auth/token", json=body)
    assert response.status_code == 401
    assert response.json()["detail"] == "invalid username or password"


def test_missing_invalid_and_expired_tokens_are_401(client: TestClient, clock: FakeClock) -> None:
    assert client.get("/api/v1/tickets").status_code == 401
    assert client.get("/api/v1/tickets").headers["www-authenticate"] == "Bearer"
    assert client.get("/api/v1/me", headers={"Authorization": "Bearer not-a-token"}).status_code == 401
    headers = login(client, "tina")
    assert client.get("/api/v1/me", headers=headers).status_code == 200
    clock.advance(12 * 3600 + 1)
    assert client.get("/api/v1/me", headers=headers).status_code == 401


def test_the_technicians_full_flow_and_its_status_trail(client: TestClient, clock: FakeClock) -> None:
    ingest(client, fault())
    tina = login(client, "tina")
    [job] = client.get("/api/v1/tickets?assignee=me", headers=tina).json()
    assert job["status"] == "assigned" and job["assignee"]["username"] == "tina" and job["priority"] == 2
    ticket_id = job["id"]

    clock.advance(60)
    accepted = client.post(f"/api/v1/tickets/{ticket_id}/accept", headers=tina,
                           json={"client_time": "2026-01-05T08:00:30Z"}).json()
    assert accepted["status"] == "accepted"
    eta = (T0 + timedelta(minutes=45)).isoformat()
    en_route = client.post(f"/api/v1/tickets/{ticket_id}/en-route", headers=tina, json={"eta": eta}).json()
    assert en_route["status"] == "en_route" and en_route["eta"].startswith("2026-01-05T08:45")
    clock.advance(1800)
    assert client.post(f"/api/v1/tickets/{ticket_id}/arrive", headers=tina).json()["status"] == "on_site"
    resolved = client.post(f"/api/v1/tickets/{ticket_id}/resolve", headers=tina,
                           json={"note": "replaced the fan motor", "resolution_code": "part_replaced"}).json()
    assert resolved["status"] == "resolved" and resolved["resolution_code"] == "part_replaced"
    closed = client.post(f"/api/v1/tickets/{ticket_id}/close", headers=login(client, "dora")).json()
    assert closed["status"] == "closed"

    detail = client.get(f"/api/v1/tickets/{ticket_id}", headers=tina).json()
    trail = [(e["type"], e["actor"], e["source"]) for e in detail["events"]]
    assert trail == [("created", None, "device"), ("assigned", None, "system"), ("accepted", "tina", "api"),
                     ("en_route", "tina", "api"), ("on_site", "tina", "api"), ("resolved", "tina", "api"),
                     ("closed", "dora", "api")]
    assert detail["events"][2]["client_at"].startswith("2026-01-05T08:00:30")
    assert detail["events"][2]["at"].startswith("2026-01-05T08:01:00")  # server time from the clock
    assert detail["store_name"] == "store-1"

    sent = statuses(runtime(client).database, ticket_id)
    assert [(s.status, s.version) for s in sent] == [  # created and assigned in one transaction: one message
        (S.ASSIGNED, 2), (S.ACCEPTED, 3), (S.EN_ROUTE, 4), (S.ON_SITE, 5), (S.RESOLVED, 6), (S.CLOSED, 7)]
    assert sent[2].eta is not None and sent[4].note == "replaced the fan motor"
    assert all(s.store_id == "store-1" and s.ticket_number == detail["number"] for s in sent)
    assert len({s.message_id for s in sent}) == len(sent)


def test_invalid_transitions_are_409_and_change_nothing(client: TestClient) -> None:
    ingest(client, fault())
    tina = login(client, "tina")
    [job] = client.get("/api/v1/tickets", headers=tina).json()
    response = client.post(f"/api/v1/tickets/{job['id']}/arrive", headers=tina)
    assert response.status_code == 409
    assert response.json()["code"] == "invalid_transition"
    assert "cannot arrive a repair ticket that is assigned" in response.json()["detail"]
    assert "accept" in response.json()["detail"]
    assert client.get(f"/api/v1/tickets/{job['id']}", headers=tina).json()["version"] == job["version"]
    assert len(statuses(runtime(client).database, job["id"])) == 1


def test_technicians_act_and_see_only_their_own_tickets(client: TestClient) -> None:
    ingest(client, fault(device="case-01"), fault(device="case-02"))  # tina, then rita
    tina, rita, dora = login(client, "tina"), login(client, "rita"), login(client, "dora")
    [tinas] = client.get("/api/v1/tickets", headers=tina).json()
    [ritas] = client.get("/api/v1/tickets?assignee=tina", headers=rita).json()  # asks for tina's: gets her own
    assert tinas["assignee"]["username"] == "tina" and ritas["assignee"]["username"] == "rita"
    response = client.post(f"/api/v1/tickets/{tinas['id']}/accept", headers=rita)
    assert response.status_code == 403 and response.json()["detail"] == "this ticket is not assigned to you"
    assert client.get(f"/api/v1/tickets/{tinas['id']}", headers=rita).status_code == 403
    assert client.post(f"/api/v1/tickets/{tinas['id']}/close", headers=tina).status_code == 403
    assert client.post(f"/api/v1/tickets/{tinas['id']}/accept", headers=dora).status_code == 403
    assert len(client.get("/api/v1/tickets", headers=dora).json()) == 2
    assert [t["id"] for t in client.get("/api/v1/tickets?assignee=rita", headers=dora).json()] == [ritas["id"]]
    assert client.get("/api/v1/tickets/9999", headers=dora).status_code == 404


def test_decline_reassigns_to_someone_who_has_not_declined(client: TestClient) -> None:
    ingest(client, fault())
    tina, rita = login(client, "tina"), login(client, "rita")
    [job] = client.get("/api/v1/tickets", headers=tina).json()
    assert client.post(f"/api/v1/tickets/{job['id']}/decline", headers=tina, json={}).status_code == 422
    declined = client.post(f"/api/v1/tickets/{job['id']}/decline", headers=tina,
                           json={"reason": "no ladder in the van"}).json()
    assert declined["status"] == "assigned" and declined["assignee"]["username"] == "rita"
    assert client.get("/api/v1/tickets", headers=tina).json() == []
    client.post(f"/api/v1/tickets/{job['id']}/decline", headers=rita, json={"reason": "off sick"})
    detail = client.get(f"/api/v1/tickets/{job['id']}", headers=login(client, "dora")).json()
    assert detail["status"] == "new" and detail["assignee"] is None
    assert [e["type"] for e in detail["events"]] == ["created", "assigned", "declined", "assigned", "declined",
                                                     "not_assigned"]
    assert detail["events"][2]["actor"] == "tina" and detail["events"][2]["note"] == "no ladder in the van"
    assert "declined" in detail["events"][-1]["note"]
    sent = statuses(runtime(client).database, job["id"])
    # one message per request, the ticket's state after it: tina's decline and rita's assignment are one
    assert [s.status for s in sent] == [S.ASSIGNED, S.ASSIGNED, S.NEW]
    assert sent[1].assignee == "Rita Cool" and sent[1].note.startswith("no ladder in the van; ")
    assert sent[2].note == "off sick"
    assert [s.version for s in sent] == [2, 4, 5]


def test_dispatcher_assigns_and_cancels(client: TestClient) -> None:
    ingest(client, fault(device="ups-1", code="on_battery", model="unknown-ups"))  # nobody auto-assigned
    dora = login(client, "dora")
    [job] = client.get("/api/v1/tickets?status=new", headers=dora).json()
    technicians = {t["username"]: t for t in client.get("/api/v1/technicians", headers=dora).json()}
    assert technicians["olga"]["active"] is False and technicians["rita"]["skills"] == ["refrigeration", "electrical"]
    assigned = client.post(f"/api/v1/tickets/{job['id']}/assign", headers=dora,
                           json={"technician_id": technicians["rita"]["id"]}).json()
    assert assigned["assignee"]["username"] == "rita"
    response = client.post(f"/api/v1/tickets/{job['id']}/assign", headers=dora,
                           json={"technician_id": technicians["olga"]["id"]})
    assert response.status_code == 403  # inactive
    stale = client.post(f"/api/v1/tickets/{job['id']}/cancel", headers=dora,
                        json={"reason": "duplicate", "expected_version": 1})
    assert stale.status_code == 409 and stale.json()["code"] == "version_conflict"
    cancelled = client.post(f"/api/v1/tickets/{job['id']}/cancel", headers=dora,
                            json={"reason": "duplicate of another job", "expected_version": assigned["version"]})
    assert cancelled.json()["status"] == "cancelled"
    assert client.post(f"/api/v1/tickets/{job['id']}/cancel", headers=dora, json={"reason": "x"}).status_code == 409


def test_store_staff_resolve_store_tasks(client: TestClient) -> None:
    ingest(client, fault(model="storeguard-sco-lane", device="lane-4", code="paper_near_end", severity="minor",
                         fault_class="revenue", ticket_class="store_task"))
    stan, sam = login(client, "stan"), login(client, "sam")
    [task] = client.get("/api/v1/tickets", headers=stan).json()
    assert task["status"] == "new" and task["assignee"] is None
    assert client.post(f"/api/v1/tickets/{task['id']}/resolve", headers=sam,
                       json={"resolution_code": "refilled", "note": ""}).status_code == 403
    done = client.post(f"/api/v1/tickets/{task['id']}/resolve", headers=stan,
                       json={"resolution_code": "refilled", "note": "new roll"})
    assert done.status_code == 200 and done.json()["status"] == "resolved"


def test_list_filters_and_reads(client: TestClient) -> None:
    ingest(client, fault(store="store-1", device="case-01"),
           fault(store="store-2", device="lane-1", model="storeguard-sco-lane", code="printer_offline",
                 fault_class="revenue", severity="major"))
    dora = login(client, "dora")
    everything = client.get("/api/v1/tickets", headers=dora).json()
    assert [t["priority"] for t in everything] == [2, 3]  # sorted by priority
    assert [t["store_id"] for t in client.get("/api/v1/tickets?store_id=store-2", headers=dora).json()] == ["store-2"]
    assert client.get("/api/v1/tickets?status=new", headers=dora).json() == []
    assert len(client.get("/api/v1/tickets?status=assigned&status=new", headers=dora).json()) == 2
    assert client.get("/api/v1/tickets?status=bogus", headers=dora).status_code == 422
    stores = client.get("/api/v1/stores", headers=dora).json()
    assert [(s["id"], s["open_tickets"]) for s in stores] == [("store-1", 1), ("store-2", 1)]
    store = client.get("/api/v1/stores/store-2", headers=dora).json()
    assert [(d["device_id"], d["kind"]) for d in store["devices"]] == [("lane-1", "self_checkout_lane")]
    assert client.get("/api/v1/stores/nope", headers=dora).status_code == 404
    assert [d["device_id"] for d in client.get("/api/v1/devices?store_id=store-1", headers=dora).json()] == ["case-01"]
    assert client.get("/api/v1/me", headers=dora).json()["role"] == "dispatcher"
    assert client.get("/api/v1/tickets?assignee=me", headers=dora).json() == []  # not a technician


def test_health_metrics_openapi_and_handheld(client: TestClient) -> None:
    health = client.get("/healthz")
    assert health.status_code == 200
    assert health.json() == {"status": "ok", "database": "ok", "mqtt": {"ingest": "disabled", "publisher": "disabled"}}
    ingest(client, fault())
    text = client.get("/metrics").text
    assert 'storeguard_central_tickets_created_total{ticket_class="repair"} 1' in text
    assert "storeguard_central_outbox_pending 1" in text  # nothing publishes with MQTT disabled
    paths = client.get("/openapi.json").json()["paths"]
    for path in ["/api/v1/auth/token", "/api/v1/tickets/{ticket_id}/en-route", "/api/v1/tickets/{ticket_id}/resolve",
                 "/api/v1/devices", "/healthz"]:
        assert path in paths
    page = client.get("/app/")
    assert page.status_code == 200 and 'src="app.js"' in page.text
    script = client.get("/app/app.js").text
    for call in ['"/auth/token"', '"/tickets?assignee=me"', '"en-route"', '"arrive"', '"resolve"', '"decline"']:
        assert call in script


def test_seed_is_idempotent(client: TestClient, seed_path) -> None:  # type: ignore[no-untyped-def]
    from central.seed import load_seed

    database: Database = runtime(client).database
    with database.session() as session, session.begin():
        summary = load_seed(session, seed_path)
    assert (summary.created, summary.updated) == (0, len(SEED_USERS))
    technicians = client.get("/api/v1/technicians", headers=login(client, "dora")).json()
    assert sorted(t["username"] for t in technicians) == ["olga", "rita", "sam", "tina"]


def test_the_handheld_script_parses() -> None:
    import shutil
    import subprocess
    from pathlib import Path

    import central

    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed")
    script = Path(central.__file__).parent / "static" / "app.js"
    result = subprocess.run([node, "--check", str(script)], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr


def test_oauth2_password_flow_form_login_and_logout(client: TestClient) -> None:
    form = {"grant_type": "password", "username": "tina", "password": PASSWORD}
    response = client.post("/api/v1/auth/token", data=form)
    assert response.status_code == 200, response.text
    headers = {"Authorization": f"Bearer {response.json()['access_token']}"}
    assert client.get("/api/v1/auth/me", headers=headers).json()["username"] == "tina"
    assert client.post("/api/v1/auth/logout", headers=headers).status_code == 204
    assert client.get("/api/v1/me", headers=headers).status_code == 401  # revoked
    assert client.post("/api/v1/auth/token", data={**form, "password": "wrong"}).status_code == 401
    bad_grant = client.post("/api/v1/auth/token", data={**form, "grant_type": "client_credentials"})
    assert bad_grant.status_code == 422 and "grant_type" in bad_grant.json()["detail"]
    missing = client.post("/api/v1/auth/token", data={"username": "tina"})
    assert missing.status_code == 422 and "password" in missing.json()["detail"]
    assert client.post("/api/v1/auth/token", content=b"{not json",
                       headers={"Content-Type": "application/json"}).status_code == 422
    assert client.post("/api/v1/auth/token", content=b"x", headers={"Content-Type": "text/plain"}).status_code == 422
    schemes = client.get("/openapi.json").json()["components"]["securitySchemes"]
    [scheme] = schemes.values()
    assert scheme["type"] == "oauth2" and scheme["flows"]["password"]["tokenUrl"] == "/api/v1/auth/token"


def test_a_legacy_scrypt_password_is_upgraded_to_argon2_at_login(client: TestClient) -> None:
    import base64
    import hashlib

    salt = b"0123456789abcdef"
    digest = hashlib.scrypt(PASSWORD.encode(), salt=salt, n=2**14, r=8, p=1, maxmem=64 * 1024 * 1024, dklen=32)
    legacy = f"scrypt$16384$8$1${base64.b64encode(salt).decode()}${base64.b64encode(digest).decode()}"
    database: Database = runtime(client).database
    with database.session() as session, session.begin():
        session.scalars(select(User).where(User.username == "tina")).one().password_hash = legacy
    login(client, "tina")
    with database.session() as session:
        upgraded = session.scalars(select(User.password_hash).where(User.username == "tina")).one()
    assert upgraded.startswith("$argon2id$")
    login(client, "tina")  # and the new hash works


def test_store_staff_see_and_act_on_their_own_store_only(client: TestClient) -> None:
    ingest(client, fault(store="store-1", device="printer-1", code="paper_near_end", ticket_class="store_task",
                         fault_class="revenue", severity="minor", model="epson-tm-t88-escpos"))
    ingest(client, fault(store="store-2", device="printer-1", code="paper_near_end", ticket_class="store_task",
                         fault_class="revenue", severity="minor", model="epson-tm-t88-escpos"))
    stan, nell, dora = login(client, "stan"), login(client, "nell"), login(client, "dora")
    every = client.get("/api/v1/tickets", headers=dora).json()
    assert {t["store_id"] for t in every} == {"store-1", "store-2"}
    own = client.get("/api/v1/tickets", headers=stan).json()
    assert [t["store_id"] for t in own] == ["store-1"]
    assert client.get("/api/v1/tickets?store_id=store-2", headers=stan).json() == []
    other = next(t for t in every if t["store_id"] == "store-2")
    assert client.get(f"/api/v1/tickets/{other['id']}", headers=stan).status_code == 403
    assert client.post(f"/api/v1/tickets/{other['id']}/resolve", headers=stan,
                       json={"resolution_code": "refilled"}).status_code == 403
    assert [s["id"] for s in client.get("/api/v1/stores", headers=stan).json()] == ["store-1"]
    assert client.get("/api/v1/stores/store-2", headers=stan).status_code == 403
    assert {d["store_id"] for d in client.get("/api/v1/devices", headers=stan).json()} == {"store-1"}
    assert client.get("/api/v1/devices?store_id=store-2", headers=stan).status_code == 403
    # store staff without a store see nothing at all
    assert client.get("/api/v1/tickets", headers=nell).json() == []
    assert client.get("/api/v1/stores", headers=nell).json() == []
    # the technician list (names and load) is for the dispatching roles
    assert client.get("/api/v1/technicians", headers=stan).status_code == 403
    assert client.get("/api/v1/technicians", headers=login(client, "tina")).status_code == 403
    assert client.get("/api/v1/technicians", headers=login(client, "sunny")).status_code == 200
