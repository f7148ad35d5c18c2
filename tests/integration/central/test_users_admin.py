"""The users administration API: admins create, list, change and deactivate users; everyone
changes their own password. On SQLite and PostgreSQL."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from central.auth.models import ApiToken, User
from central.auth.passwords import verify_password
from central.db import Database
from tests.integration.central.support import PASSWORD

API = "/api/v1"
NEW_PASSWORD = "a-much-longer-passphrase"


def login(client: TestClient, username: str, password: str = PASSWORD) -> dict[str, str]:
    response = client.post(f"{API}/auth/token", json={"username": username, "password": password})
    assert response.status_code == 200, response.text
    return {"Authorization": f"Bearer {response.json()['access_token']}"}


def user_id(client: TestClient, admin: dict[str, str], username: str) -> int:
    items = client.get(f"{API}/users", headers=admin, params={"limit": 500}).json()["items"]
    return next(u["id"] for u in items if u["username"] == username)


def database(client: TestClient) -> Database:
    db: Database = client.app.state.runtime.database  # type: ignore[attr-defined]
    return db


def new_user(**changes: Any) -> dict[str, Any]:
    return {"username": "dave", "display_name": "Dave Dispatch", "role": "dispatcher", "password": NEW_PASSWORD,
            "region": "north", **changes}


@pytest.fixture
def admin(client: TestClient) -> dict[str, str]:
    return login(client, "adam")


def test_create_then_read_and_log_in(
    client: TestClient, admin: dict[str, str], caplog: pytest.LogCaptureFixture,
) -> None:  # fmt: skip
    with caplog.at_level(logging.DEBUG):
        response = client.post(f"{API}/users", headers=admin, json=new_user())
    assert response.status_code == 201, response.text
    created = response.json()
    assert created == {"id": created["id"], "username": "dave", "display_name": "Dave Dispatch", "role": "dispatcher",
                       "region": "north", "store_id": None, "active": True, "created_at": created["created_at"]}
    assert NEW_PASSWORD not in response.text and NEW_PASSWORD not in caplog.text  # never returned, never logged
    assert client.get(f"{API}/users/{created['id']}", headers=admin).json() == created
    with database(client).session() as session:
        stored = session.scalars(select(User.password_hash).where(User.username == "dave")).one()
    assert stored.startswith("$argon2id$") and verify_password(NEW_PASSWORD, stored)
    dave = login(client, "dave", NEW_PASSWORD)
    assert client.get(f"{API}/me", headers=dave).json()["role"] == "dispatcher"


def test_store_staff_with_their_store(client: TestClient, admin: dict[str, str]) -> None:
    body = new_user(username="sue", role="store_staff", region="", store_id="store-1")
    response = client.post(f"{API}/users", headers=admin, json=body)
    assert response.status_code == 201, response.text
    assert response.json()["store_id"] == "store-1"


def test_list_filters_and_pages(client: TestClient, admin: dict[str, str]) -> None:
    def names(**params: Any) -> list[str]:
        response = client.get(f"{API}/users", headers=admin, params=params)
        assert response.status_code == 200, response.text
        return [u["username"] for u in response.json()["items"]]

    assert names(role="technician") == ["olga", "rita", "sam", "tina"]  # by username
    assert names(role="technician", active=True) == ["rita", "sam", "tina"]
    assert names(active=False) == ["olga"]
    assert names(region="south") == ["reggie", "sunny"]
    assert names(store_id="store-1") == ["stan"]
    page = client.get(f"{API}/users", headers=admin, params={"limit": 2, "offset": 1}).json()
    assert page["total"] == 11 and [u["username"] for u in page["items"]] == ["dora", "fay"]
    assert client.get(f"{API}/users", headers=admin, params={"role": "wizard"}).status_code == 422
    assert client.get(f"{API}/users/9999", headers=admin).status_code == 404


def test_patch_changes_only_the_fields_sent(client: TestClient, admin: dict[str, str]) -> None:
    sunny = user_id(client, admin, "sunny")
    response = client.patch(f"{API}/users/{sunny}", headers=admin, json={"display_name": "Sunny S.", "region": "west"})
    assert response.status_code == 200, response.text
    assert {k: response.json()[k] for k in ("display_name", "region", "role", "active")} == {
        "display_name": "Sunny S.", "region": "west", "role": "supervisor", "active": True}
    response = client.patch(f"{API}/users/{sunny}", headers=admin, json={"role": "regional_manager"})
    assert response.json()["role"] == "regional_manager" and response.json()["region"] == "west"
    assert client.patch(f"{API}/users/{sunny}", headers=admin, json={"active": None}).status_code == 422
    assert client.patch(f"{API}/users/9999", headers=admin, json={"display_name": "x"}).status_code == 404


def test_patch_moves_store_staff_between_stores_and_roles(client: TestClient, admin: dict[str, str]) -> None:
    nell = user_id(client, admin, "nell")  # store staff without a store
    response = client.patch(f"{API}/users/{nell}", headers=admin, json={"store_id": "store-1"})
    assert response.status_code == 200 and response.json()["store_id"] == "store-1"
    response = client.patch(f"{API}/users/{nell}", headers=admin, json={"role": "facilities"})
    assert response.status_code == 422 and response.json()["field"] == "store_id"
    assert "only store_staff" in response.json()["detail"]
    response = client.patch(f"{API}/users/{nell}", headers=admin, json={"role": "facilities", "store_id": None})
    assert response.status_code == 200 and response.json()["store_id"] is None
    response = client.patch(f"{API}/users/{nell}", headers=admin, json={"role": "store_staff"})
    assert response.status_code == 422 and response.json()["field"] == "store_id"


def test_duplicate_username_is_409(client: TestClient, admin: dict[str, str]) -> None:
    response = client.post(f"{API}/users", headers=admin, json=new_user(username="tina"))
    assert response.status_code == 409
    assert response.json()["code"] == "username_taken" and "username" in response.json()["detail"]


@pytest.mark.parametrize(("changes", "field", "says"), [
    ({"password": "too-short"}, "password", "at least 12 characters"),
    ({"username": "dave.dispatch", "password": "Dave.Dispatch"}, "password", "not be the username"),
    ({"role": "store_staff", "region": ""}, "store_id", "need a store"),
    ({"role": "technician", "store_id": "store-1"}, "store_id", "only store_staff"),
])  # fmt: skip
def test_invalid_users_are_422_naming_the_field(
    client: TestClient, admin: dict[str, str], changes: dict[str, Any], field: str, says: str,
) -> None:  # fmt: skip
    response = client.post(f"{API}/users", headers=admin, json=new_user(**changes))
    assert response.status_code == 422, response.text
    body = response.json()
    assert body["field"] == field and body["detail"].startswith(f"{field}: ") and says in body["detail"]
    assert changes.get("password", NEW_PASSWORD) not in response.text


@pytest.mark.parametrize(("changes", "field"), [
    ({"username": "Dave"}, "username"), ({"username": ""}, "username"), ({"username": "d" * 65}, "username"),
    ({"username": "dave smith"}, "username"), ({"role": "wizard"}, "role"), ({"display_name": " "}, "display_name"),
    ({"password": None}, "password"), ({"passwd": "x"}, "passwd"),
])  # fmt: skip
def test_malformed_bodies_are_422_naming_the_field(
    client: TestClient, admin: dict[str, str], changes: dict[str, Any], field: str,
) -> None:  # fmt: skip
    response = client.post(f"{API}/users", headers=admin, json=new_user(**changes))
    assert response.status_code == 422, response.text
    assert ["body", field] in [e["loc"] for e in response.json()["detail"]]


def test_store_staff_of_an_unknown_store_is_404(client: TestClient, admin: dict[str, str]) -> None:
    response = client.post(f"{API}/users", headers=admin, json=new_user(role="store_staff", store_id="store-99"))
    assert response.status_code == 404 and response.json()["detail"] == "store_id: there is no store 'store-99'"


def test_deactivation_ends_sessions_and_logins(client: TestClient, admin: dict[str, str]) -> None:
    dora = login(client, "dora")
    dora_id = user_id(client, admin, "dora")
    response = client.patch(f"{API}/users/{dora_id}", headers=admin, json={"active": False})
    assert response.status_code == 200 and response.json()["active"] is False
    assert client.get(f"{API}/me", headers=dora).status_code == 401
    assert client.post(f"{API}/auth/token", json={"username": "dora", "password": PASSWORD}).status_code == 401
    with database(client).session() as session:
        assert not session.scalars(select(ApiToken).where(ApiToken.user_id == dora_id)).all()
    client.patch(f"{API}/users/{dora_id}", headers=admin, json={"active": True})
    assert client.get(f"{API}/me", headers=login(client, "dora")).status_code == 200


def test_a_role_change_ends_sessions_but_other_changes_do_not(client: TestClient, admin: dict[str, str]) -> None:
    fay, fay_id = login(client, "fay"), user_id(client, admin, "fay")
    client.patch(f"{API}/users/{fay_id}", headers=admin, json={"display_name": "Fay F.", "role": "facilities"})
    assert client.get(f"{API}/me", headers=fay).status_code == 200  # the same role: nothing ended
    client.patch(f"{API}/users/{fay_id}", headers=admin, json={"role": "dispatcher"})
    assert client.get(f"{API}/me", headers=fay).status_code == 401


def test_an_admin_password_reset_ends_sessions(client: TestClient, admin: dict[str, str]) -> None:
    tina, tina_id = login(client, "tina"), user_id(client, admin, "tina")
    response = client.post(f"{API}/users/{tina_id}/password", headers=admin, json={"password": NEW_PASSWORD})
    assert response.status_code == 204
    assert client.get(f"{API}/me", headers=tina).status_code == 401
    assert client.post(f"{API}/auth/token", json={"username": "tina", "password": PASSWORD}).status_code == 401
    login(client, "tina", NEW_PASSWORD)
    response = client.post(f"{API}/users/{tina_id}/password", headers=admin, json={"password": "tina"})
    assert response.status_code == 422 and response.json()["field"] == "password"


def test_an_admin_cannot_lock_themselves_out(client: TestClient, admin: dict[str, str]) -> None:
    adam = user_id(client, admin, "adam")
    for change, says in (({"active": False}, "cannot deactivate yourself"),
                         ({"role": "dispatcher"}, "cannot remove your own admin role")):
        response = client.patch(f"{API}/users/{adam}", headers=admin, json=change)
        assert response.status_code == 400 and says in response.json()["detail"], response.text
    assert client.get(f"{API}/users/{adam}", headers=admin).json()["role"] == "admin"
    ok = client.patch(f"{API}/users/{adam}", headers=admin, json={"role": "admin", "active": True})
    assert ok.status_code == 200
    assert client.get(f"{API}/me", headers=admin).status_code == 200


def test_changing_your_own_password(client: TestClient) -> None:
    stan = login(client, "stan")
    other = login(client, "stan")  # another session of his
    url = f"{API}/auth/me/password"
    wrong = client.post(url, headers=stan, json={"current_password": "not-it", "new_password": NEW_PASSWORD})
    assert wrong.status_code == 400 and wrong.json()["detail"] == "current_password is wrong"
    short = client.post(url, headers=stan, json={"current_password": PASSWORD, "new_password": "short"})
    assert short.status_code == 422 and short.json()["field"] == "new_password"
    same = client.post(url, headers=stan, json={"current_password": PASSWORD, "new_password": PASSWORD})
    assert same.status_code == 422 and "differ" in same.json()["detail"]
    assert client.get(f"{API}/me", headers=other).status_code == 200  # nothing changed yet
    response = client.post(url, headers=stan, json={"current_password": PASSWORD, "new_password": NEW_PASSWORD})
    assert response.status_code == 204, response.text
    assert client.get(f"{API}/me", headers=stan).status_code == 200  # this session goes on
    assert client.get(f"{API}/me", headers=other).status_code == 401  # the others end
    assert client.post(f"{API}/auth/token", json={"username": "stan", "password": PASSWORD}).status_code == 401
    login(client, "stan", NEW_PASSWORD)


@pytest.mark.parametrize("username", ["dora", "fay", "stan", "tina", "sunny"])
def test_non_admins_get_403(client: TestClient, admin: dict[str, str], username: str) -> None:
    headers = login(client, username)
    nell = user_id(client, admin, "nell")
    for method, path, body in (("GET", "/users", None), ("GET", f"/users/{nell}", None),
                               ("POST", "/users", new_user()), ("PATCH", f"/users/{nell}", {"active": False}),
                               ("POST", f"/users/{nell}/password", {"password": NEW_PASSWORD})):
        response = client.request(method, API + path, headers=headers, json=body)
        assert response.status_code == 403, f"{method} {path}: {response.status_code}"
        assert "users.manage" in response.json()["detail"]
    assert client.get(f"{API}/users/{nell}", headers=admin).json()["active"] is True
