"""Every endpoint against every role: who is let through, who gets 403, and 401 without a token.

The table below is the authorisation contract. The test fails when central has an endpoint
the table does not list, so a new endpoint cannot ship without deciding who may call it:
add a row (method, path template, concrete path, body, roles let through).

"Let through" means the authorisation passed: any answer but 401/403 (and never a 5xx); the
domain may still say 404/409/422. Each role runs the whole table, in order, in a fresh
database, as the seeded user of that role: tina (technician, the ticket's assignee), dora
(dispatcher), sunny (supervisor), reggie (regional manager), fay (facilities), stan (store
staff of store-1, where the ticket is), adam (admin).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from central.app import create_app
from central.clock import FakeClock
from central.settings import CentralSettings
from tests.integration.central.support import PASSWORD, fault, send

ALL = frozenset({"technician", "dispatcher", "supervisor", "regional_manager", "facilities", "store_staff", "admin"})
DISPATCHING = frozenset({"dispatcher", "supervisor", "regional_manager", "admin"})
TECH = frozenset({"technician"})
FACILITIES = frozenset({"facilities", "admin"})
ADMIN = frozenset({"admin"})
PUBLIC = "public"  # no token needed
USER_OF_ROLE = {"technician": "tina", "dispatcher": "dora", "supervisor": "sunny", "regional_manager": "reggie",
                "facilities": "fay", "store_staff": "stan", "admin": "adam"}

Body = dict[str, Any] | Callable[[TestClient, dict[str, str]], dict[str, Any]] | None
T = "/api/v1/tickets/{ticket_id}"
CAL = {"timezone": "Europe/Berlin", "hours": {"mon": [["07:00", "22:00"]]}, "holidays": []}
U = "/api/v1/users/{user_id}"
NELL = "/api/v1/users/11"  # nell, the last seeded user (support.SEED_USERS): no row below logs in as her
NEW_USER = {"username": "newbie", "display_name": "New Bie", "role": "dispatcher", "password": "a-long-passphrase"}
WRONG_CURRENT = {"current_password": "not-the-password", "new_password": "a-long-passphrase"}  # 400, changes nothing
TH = "/api/v1/thresholds"
TH_MODEL, TH_STORE = TH + "/models/dixell-xr75cx", TH + "/stores/store-1/models/dixell-xr75cx"
TH_DEVICE = TH + "/stores/store-1/devices/case-01"
TH_BODY = {"reason": "matrix", "rules": {"high_temperature": {"delay_s": 900}}}
TH_CHANGE = {"op": "patch", "target": {"scope": "model", "model": "dixell-xr75cx"}, **TH_BODY}
THRESHOLDS = frozenset({"dispatcher", "supervisor", "regional_manager", "facilities", "admin"})  # thresholds.read
SLA = {"response_min": 30, "arrival_min": 240, "resolution_min": 480, "business_hours": False,
       "accept_window_min": 15, "escalation_interval_min": 60}


def _rules(client: TestClient, admin: dict[str, str]) -> dict[str, Any]:
    rules = client.get("/api/v1/priority-rules", headers=admin).json()
    return {"rules": [{k: r[k] for k in ("fault_class", "severity", "criticality", "priority")} for r in rules]}


# (method, path template, concrete path, body, roles let through | PUBLIC); order matters for the
# technician, who works the ticket assigned to them step by step and declines it last.
MATRIX: list[tuple[str, str, str, Body, frozenset[str] | str]] = [
    ("GET", "/healthz", "/healthz", None, PUBLIC),
    ("GET", "/metrics", "/metrics", None, PUBLIC),
    ("GET", "/api/v1/me", "/api/v1/me", None, ALL),
    ("GET", "/api/v1/auth/me", "/api/v1/auth/me", None, ALL),
    ("POST", "/api/v1/auth/me/password", "/api/v1/auth/me/password", WRONG_CURRENT, ALL),
    ("GET", "/api/v1/users", "/api/v1/users", None, ADMIN),
    ("POST", "/api/v1/users", "/api/v1/users", NEW_USER, ADMIN),
    ("GET", U, NELL, None, ADMIN),
    ("PATCH", U, NELL, {"display_name": "Nell N."}, ADMIN),
    ("POST", U + "/password", NELL + "/password", {"password": "another-long-passphrase"}, ADMIN),
    ("GET", "/api/v1/stores", "/api/v1/stores", None, ALL),
    ("GET", "/api/v1/stores/{store_id}", "/api/v1/stores/store-1", None, ALL),
    ("GET", "/api/v1/devices", "/api/v1/devices", None, ALL),
    ("GET", "/api/v1/stores/{store_id}/config", "/api/v1/stores/store-1/config", None, ALL),
    ("PUT", "/api/v1/stores/{store_id}/config", "/api/v1/stores/store-1/config", {"devices": {}}, FACILITIES),
    ("GET", TH + "/models/{model}", TH_MODEL, None, THRESHOLDS),
    ("PUT", TH + "/models/{model}", TH_MODEL, TH_BODY, FACILITIES),
    ("PATCH", TH + "/models/{model}", TH_MODEL, TH_BODY, FACILITIES),
    ("DELETE", TH + "/models/{model}", TH_MODEL + "?reason=undo", None, FACILITIES),
    ("GET", TH + "/stores/{store_id}/models/{model}", TH_STORE, None, THRESHOLDS),
    ("PUT", TH + "/stores/{store_id}/models/{model}", TH_STORE, TH_BODY, FACILITIES),
    ("PATCH", TH + "/stores/{store_id}/models/{model}", TH_STORE, TH_BODY, FACILITIES),
    ("DELETE", TH + "/stores/{store_id}/models/{model}", TH_STORE + "?reason=undo", None, FACILITIES),
    ("GET", TH + "/stores/{store_id}/devices/{device_id}", TH_DEVICE, None, THRESHOLDS),
    ("PUT", TH + "/stores/{store_id}/devices/{device_id}", TH_DEVICE, TH_BODY, FACILITIES),
    ("PATCH", TH + "/stores/{store_id}/devices/{device_id}", TH_DEVICE, TH_BODY, FACILITIES),
    ("DELETE", TH + "/stores/{store_id}/devices/{device_id}", TH_DEVICE + "?reason=undo", None, FACILITIES),
    ("POST", TH + "/changes", TH + "/changes", TH_CHANGE, FACILITIES),
    ("POST", TH + "/dry-run", TH + "/dry-run", TH_CHANGE, FACILITIES),
    ("GET", TH + "/changes", TH + "/changes", None, THRESHOLDS),
    ("GET", TH + "/changes/{version}", TH + "/changes/1", None, THRESHOLDS),
    ("GET", TH + "/rollout", TH + "/rollout", None, THRESHOLDS),
    ("GET", "/api/v1/technicians", "/api/v1/technicians", None, DISPATCHING),
    ("GET", "/api/v1/tickets", "/api/v1/tickets", None, ALL),
    ("GET", T, "/api/v1/tickets/1", None, ALL),  # tina: her job; stan: his store's
    ("GET", T + "/sla", "/api/v1/tickets/1/sla", None, ALL),
    ("GET", "/api/v1/stores/{store_id}/devices/{device_id}/temperature-log",
     "/api/v1/stores/store-1/devices/case-01/temperature-log", None,
     frozenset({"dispatcher", "supervisor", "regional_manager", "facilities", "store_staff", "admin"})),
    ("GET", "/api/v1/dead-letters", "/api/v1/dead-letters", None, frozenset({"dispatcher", "admin"})),
    ("GET", "/api/v1/priority-rules", "/api/v1/priority-rules", None, ALL),
    ("PUT", "/api/v1/priority-rules", "/api/v1/priority-rules", _rules, ADMIN),
    ("GET", "/api/v1/sla-policies", "/api/v1/sla-policies", None, ALL),
    ("GET", "/api/v1/work-templates", "/api/v1/work-templates", None, ALL),
    ("PUT", "/api/v1/work-templates/{name}", "/api/v1/work-templates/lane-down",
     {"fault_class": "revenue", "tasks": [{"code": "close_lane", "title": "Close the lane"}]}, ADMIN),
    ("DELETE", "/api/v1/work-templates/{name}", "/api/v1/work-templates/refrigerated-case-over-temperature", None,
     ADMIN),
    ("PUT", "/api/v1/sla-policies/{fault_class}/{priority}", "/api/v1/sla-policies/revenue/3", SLA, ADMIN),
    ("GET", "/api/v1/stores/{store_id}/calendar", "/api/v1/stores/store-1/calendar", None, ALL),
    ("PUT", "/api/v1/stores/{store_id}/calendar", "/api/v1/stores/store-1/calendar", CAL, FACILITIES),
    ("DELETE", "/api/v1/stores/{store_id}/calendar", "/api/v1/stores/store-1/calendar", None, FACILITIES),
    ("PATCH", "/api/v1/stores/{store_id}/devices/{device_id}", "/api/v1/stores/store-1/devices/case-01",
     {"criticality": "high"}, FACILITIES),
    ("POST", T + "/priority", "/api/v1/tickets/1/priority", {"priority": 1, "reason": "goods inside"}, DISPATCHING),
    ("POST", T + "/accept", "/api/v1/tickets/1/accept", None, TECH),
    ("POST", T + "/en-route", "/api/v1/tickets/1/en-route", {}, TECH),
    ("POST", T + "/arrive", "/api/v1/tickets/1/arrive", None, TECH),
    ("POST", T + "/await-parts", "/api/v1/tickets/1/await-parts", {"part": "compressor relay"}, TECH),
    ("POST", T + "/hold", "/api/v1/tickets/1/hold", {"reason": "no store access"}, TECH | DISPATCHING),
    ("POST", T + "/resume", "/api/v1/tickets/1/resume", None, TECH | DISPATCHING),
    ("POST", T + "/assign", "/api/v1/tickets/1/assign", {"technician_id": 3}, DISPATCHING),
    ("POST", T + "/resolve", "/api/v1/tickets/1/resolve", {"resolution_code": "fixed"}, TECH),
    ("POST", T + "/close", "/api/v1/tickets/1/close", None, DISPATCHING),
    ("POST", T + "/cancel", "/api/v1/tickets/1/cancel", {"reason": "duplicate"}, DISPATCHING),
    ("POST", T + "/decline", "/api/v1/tickets/1/decline", {"reason": "not my area"}, TECH),
    ("POST", "/api/v1/auth/logout", "/api/v1/auth/logout", None, ALL),  # last: it revokes the token
]
LOGIN = ("POST", "/api/v1/auth/token")  # public; checked in test_rest (JSON, form, bad credentials)


def _endpoints(client: TestClient) -> set[tuple[str, str]]:
    paths = client.get("/openapi.json").json()["paths"]
    return {(method.upper(), path) for path, operations in paths.items() for method in operations}


@pytest.fixture
def make_client(tmp_path: Path, seed_path: Path) -> Iterator[Callable[[], TestClient]]:
    clients: list[TestClient] = []

    def make() -> TestClient:
        database = tmp_path / f"central-{len(clients)}.db"
        settings = CentralSettings(database_url=f"sqlite:///{database}", mqtt_enabled=False, seed_file=seed_path,
                                   timers_enabled=False)
        client = TestClient(create_app(settings, clock=FakeClock()))
        client.__enter__()
        clients.append(client)
        runtime = client.app.state.runtime  # type: ignore[attr-defined]
        send(runtime.ingestor, fault())  # ticket 1: store-1/case-01 high temperature, assigned to tina
        return client

    yield make
    for client in clients:
        client.__exit__(None, None, None)


def _login(client: TestClient, username: str) -> dict[str, str]:
    response = client.post("/api/v1/auth/token", json={"username": username, "password": PASSWORD})
    assert response.status_code == 200, response.text
    return {"Authorization": f"Bearer {response.json()['access_token']}"}


def test_the_matrix_lists_every_endpoint(make_client: Callable[[], TestClient]) -> None:
    client = make_client()
    listed = {(method, template) for method, template, *_ in MATRIX} | {LOGIN}
    missing = _endpoints(client) - listed
    assert not missing, f"endpoints with no row in the permission matrix: {sorted(missing)}"
    assert not listed - _endpoints(client), "rows for endpoints that no longer exist"


def _call(client: TestClient, method: str, path: str, body: Body, headers: dict[str, str],
          admin: dict[str, str]) -> int:
    payload = body(client, admin) if callable(body) else body
    return client.request(method, path, json=payload, headers=headers).status_code


@pytest.mark.parametrize("role", sorted(ALL))
def test_each_role_is_let_through_exactly_where_the_matrix_says(
        role: str, make_client: Callable[[], TestClient]) -> None:  # fmt: skip
    client = make_client()
    admin = _login(client, "adam")
    headers = _login(client, USER_OF_ROLE[role])
    wrong: list[str] = []
    for method, _template, path, body, allowed in MATRIX:
        status = _call(client, method, path, body, headers, admin)
        let_through = allowed == PUBLIC or role in allowed
        if status >= 500 or (let_through and status in (401, 403)) or (not let_through and status != 403):
            wrong.append(f"{method} {path}: {status} (expected {'let through' if let_through else '403'})")
    assert not wrong, f"{role}:\n" + "\n".join(wrong)


def test_without_a_token_only_public_endpoints_answer(make_client: Callable[[], TestClient]) -> None:
    client = make_client()
    admin = _login(client, "adam")
    for method, _template, path, body, allowed in MATRIX:
        status = _call(client, method, path, body, {}, admin)
        assert status == (200 if allowed == PUBLIC else 401), f"{method} {path}: {status}"


def test_a_store_staff_member_without_a_store_is_denied_store_data(make_client: Callable[[], TestClient]) -> None:
    client = make_client()
    nell = _login(client, "nell")
    assert client.get("/api/v1/tickets/1", headers=nell).status_code == 403
    assert client.get("/api/v1/stores/store-1", headers=nell).status_code == 403
    assert client.get("/api/v1/stores/store-1/calendar", headers=nell).status_code == 403
    assert client.get("/api/v1/stores/store-1/config", headers=nell).status_code == 403
    assert client.get("/api/v1/stores/store-1/devices/case-01/temperature-log", headers=nell).status_code == 403
