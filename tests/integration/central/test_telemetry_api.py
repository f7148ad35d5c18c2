"""GET /api/v1/stores/{store}/devices/{device}/temperature-log: JSON, CSV, gaps and who may read it."""

from __future__ import annotations

import csv
import io
from datetime import timedelta

from fastapi.testclient import TestClient

from central.ingest.processor import Ingestor
from protocols.mqtt.messages import TelemetryBatch, TelemetryPoint
from tests.integration.central.support import PASSWORD, T0, send
from tests.integration.central.test_telemetry import STORE, case_batch, health

URL = f"/api/v1/stores/{STORE}/devices/case-01/temperature-log"
START = T0 - timedelta(hours=2)


def login(client: TestClient, username: str) -> dict[str, str]:
    response = client.post("/api/v1/auth/token", json={"username": username, "password": PASSWORD})
    assert response.status_code == 200, response.text
    return {"Authorization": f"Bearer {response.json()['access_token']}"}


def ingest_two_hours(client: TestClient) -> None:
    """Readings every 5 min from T0-2h, except the interval from 06:45 UTC, which is silent."""
    ingestor: Ingestor = client.app.state.runtime.ingestor  # type: ignore[attr-defined]
    send(ingestor, health(("case-01", "dixell-xr75cx"), ("lane-01", "storeguard-sco-lane")))
    for seq, minute in enumerate(range(0, 120, 5), 1):
        if 45 <= minute < 60:
            continue  # the controller was not heard for one whole interval
        air = 9.5 if minute == 90 else 4.0 + (minute % 15) / 10
        send(ingestor, case_batch(START + timedelta(minutes=minute), air, seq=seq, defrost=minute == 30))


def params(**extra: str) -> dict[str, str]:
    return {"from": START.isoformat(), "to": T0.isoformat(), **extra}


def test_the_log_lists_every_interval_with_its_figures_and_flags(client: TestClient) -> None:
    ingest_two_hours(client)
    response = client.get(URL, params=params(), headers=login(client, "dora"))
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["store_name"], body["device_model"], body["location"], body["interval_s"]) == (
        "Harbour Road", "dixell-xr75cx", "Aisle 3", 900)
    assert body["from"].startswith("2026-01-05T06:00:00")
    rows = body["intervals"]
    assert [r["point"] for r in rows] == ["air_temp"] * 8
    assert [r["interval_start"][11:16] for r in rows] == ["06:00", "06:15", "06:30", "06:45", "07:00", "07:15",
                                                         "07:30", "07:45"]
    first = rows[0]
    assert (first["min"], first["max"], first["mean"], first["samples"], first["high_limit"]) == (4.0, 5.0, 4.5, 3, 8.0)
    assert first["interval_end"][11:16] == "06:15"
    assert rows[2]["flags"]["defrost"] and not rows[1]["flags"]["defrost"]
    assert rows[3]["flags"]["gap"] and rows[3]["samples"] == 0 and rows[3]["mean"] is None
    assert rows[6]["flags"]["above_limit"] and rows[6]["max"] == 9.5
    assert sum(r["flags"]["gap"] for r in rows) == 1

    # the same log as CSV, for an inspector
    response = client.get(URL, params=params(format="csv"), headers=login(client, "adam"))
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/csv")
    assert "attachment" in response.headers["content-disposition"]
    table = list(csv.reader(io.StringIO(response.text)))
    assert table[0] == ["store_id", "store_name", "device_id", "location", "probe", "unit", "interval_start_utc",
                        "interval_end_utc", "min", "max", "mean", "samples", "high_limit", "flags"]
    assert table[1] == [STORE, "Harbour Road", "case-01", "Aisle 3", "air_temp", "°C", "2026-01-05T06:00:00Z",
                        "2026-01-05T06:15:00Z", "4.00", "5.00", "4.50", "3", "8.00", ""]
    assert table[3][-1] == "defrost"
    assert table[4][8:12] == ["", "", "", "0"] and table[4][-1] == "gap"
    assert table[7][-1] == "above_limit"
    assert len(table) == 1 + 8


def test_the_default_range_gaps_and_probes(client: TestClient) -> None:
    ingestor: Ingestor = client.app.state.runtime.ingestor  # type: ignore[attr-defined]
    send(ingestor, health(("case-01", "dixell-xr75cx")))
    send(ingestor, case_batch(T0 - timedelta(minutes=20), 4.0, seq=1))
    rows = client.get(URL, headers=login(client, "dora")).json()["intervals"]
    assert len(rows) == 96  # 24 h back from now (T0), the interval starting at T0 not yet begun
    assert [r["flags"]["gap"] for r in rows[-2:]] == [False, True]  # 07:30 has the reading, 07:45 none

    # a device with two logged probes lists both
    send(ingestor, health(("case-02", "danfoss-ekc-202")))
    send(ingestor, TelemetryBatch(store_id=STORE, seq=2, taken_at=T0 - timedelta(minutes=20), points=[
        TelemetryPoint(device_id="case-02", point="air_on_temp", value=6.0, unit="°C"),
        TelemetryPoint(device_id="case-02", point="air_off_temp", value=2.0, unit="°C"),
    ]))
    body = client.get(URL.replace("case-01", "case-02"), headers=login(client, "dora"),
                      params={"from": (T0 - timedelta(minutes=30)).isoformat(), "to": T0.isoformat()}).json()
    assert [(r["point"], r["samples"]) for r in body["intervals"]] == [
        ("air_on_temp", 1), ("air_on_temp", 0), ("air_off_temp", 1), ("air_off_temp", 0)]


def test_who_may_read_the_log(client: TestClient) -> None:
    ingest_two_hours(client)
    # stan is store staff of this store; nell is store staff with no store
    for username, status in [("adam", 200), ("dora", 200), ("fay", 200), ("tina", 403), ("stan", 200),
                             ("nell", 403)]:
        response = client.get(URL, params=params(), headers=login(client, username))
        assert response.status_code == status, (username, response.text)
    assert client.get(URL, params=params()).status_code == 401


def test_bad_requests_say_what_is_wrong(client: TestClient) -> None:
    ingest_two_hours(client)
    headers = login(client, "dora")
    response = client.get(URL, params={"from": T0.isoformat(), "to": START.isoformat()}, headers=headers)
    assert response.status_code == 422 and response.json()["field"] == "to"
    response = client.get(URL, params={"from": "2026-01-01T00:00:00", "to": T0.isoformat()}, headers=headers)
    assert response.status_code == 422 and "time zone" in response.json()["detail"]
    response = client.get(URL, params={"from": (T0 - timedelta(days=100)).isoformat(), "to": T0.isoformat()},
                          headers=headers)
    assert response.status_code == 422 and "92 days" in response.json()["detail"]
    response = client.get(URL, params={"from": "yesterday"}, headers=headers)
    assert response.status_code == 422 and "from" in response.text
    assert client.get(URL, params=params(format="pdf"), headers=headers).status_code == 422
    other = f"/api/v1/stores/{STORE}/devices/lane-01/temperature-log"
    response = client.get(other, params=params(), headers=headers)
    assert response.status_code == 404 and "not a refrigeration controller" in response.json()["detail"]
    missing = f"/api/v1/stores/{STORE}/devices/case-99/temperature-log"
    assert client.get(missing, params=params(), headers=headers).status_code == 404

