"""Operators can list what central gave up on; technicians and store staff cannot."""

from __future__ import annotations

from datetime import timedelta

from fastapi.testclient import TestClient

from central.db import Database
from central.ingest import dead_letters
from central.ingest.dead_letters import PoisonMessage
from central.settings import CentralSettings
from tests.integration.central.support import T0
from tests.integration.central.test_rest import login


def test_dead_letters_are_listed_for_operators_only(client: TestClient, database_url: str) -> None:
    settings = CentralSettings(database_url=database_url, mqtt_enabled=False)
    database = Database(settings.database_url)
    try:
        with database.session() as session, session.begin():
            for n, store in enumerate(["store-001", "store-002", "store-001"]):
                payload = b'{"message_id": "m-%d-abcdef"}' % n if n < 2 else b"\xff\xfe not JSON"
                dead_letters.record(session=session, message=PoisonMessage(
                    topic=f"storeguard/v1/{store}/fault", payload=payload,
                    error=f"boom {n}", attempts=3, first_failed_at=T0, last_failed_at=T0 + timedelta(minutes=n)))
    finally:
        database.dispose()

    page = client.get("/api/v1/dead-letters", headers=login(client, "dora")).json()
    assert page["total"] == 3
    assert [item["error"] for item in page["items"]] == ["boom 2", "boom 1", "boom 0"]  # newest first
    newest = page["items"][0]
    assert newest["store_id"] == "store-001" and newest["message_id"] is None  # not JSON: no id to read
    assert newest["payload_preview"].startswith("\ufffd") and newest["payload_bytes"] == len(b"\xff\xfe not JSON")
    assert page["items"][1]["message_id"] == "m-1-abcdef"

    only = client.get("/api/v1/dead-letters", params={"store_id": "store-002"}, headers=login(client, "adam")).json()
    assert only["total"] == 1 and only["items"][0]["error"] == "boom 1"

    for username in ("tina", "stan"):
        response = client.get("/api/v1/dead-letters", headers=login(client, username))
        assert response.status_code == 403, response.text
    assert client.get("/api/v1/dead-letters").status_code == 401
