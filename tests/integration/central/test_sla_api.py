"""The SLA API: priority rules and device criticality, SLA policies, store calendars, a ticket's SLA
figures, priority changes, hold/resume/await-parts and handheld time, with their permissions."""

from __future__ import annotations

from datetime import timedelta

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from central.app import create_app
from central.db import migrate
from central.clock import FakeClock
from central.settings import CentralSettings
from central.timers import service as timers
from protocols.mqtt.messages import TicketStatusValue as S
from tests.integration.central.support import T0, fault, set_templates, statuses
from tests.integration.central.test_rest import ingest, login, runtime


@pytest.fixture
def client(database_url: str, seed_path: Path, clock: FakeClock) -> Iterator[TestClient]:
    """Central without its timer loop: these tests jump the fake clock past SLA deadlines, and a
    background pass would reassign or escalate mid-test (test_escalation runs the timers by hand)."""
    migrate(database_url)
    set_templates(database_url, enabled=False)  # no linked store tasks in the ticket lists
    settings = CentralSettings(database_url=database_url, mqtt_enabled=False, seed_file=seed_path,
                               timers_enabled=False)
    with TestClient(create_app(settings, clock=clock)) as test_client:
        yield test_client


def _job(client: TestClient, headers: dict[str, str]) -> dict:  # type: ignore[type-arg]
    [job] = client.get("/api/v1/tickets", headers=headers).json()
    return job


def test_priority_rules_are_data_and_criticality_raises_priority(client: TestClient) -> None:
    adam, dora = login(client, "adam"), login(client, "dora")
    rules = client.get("/api/v1/priority-rules", headers=dora).json()
    assert len(rules) == 80
    assert {"fault_class": "food_safety", "severity": "major", "criticality": "high", "priority": 1} in rules
    assert {"fault_class": "revenue", "severity": "major", "criticality": "low", "priority": 4} in rules
    ingest(client, fault(device="case-09", state="cleared"))  # registers the device
    response = client.patch("/api/v1/stores/store-1/devices/case-01", headers=dora, json={"criticality": "high"})
    assert response.status_code == 403
    assert client.patch("/api/v1/stores/store-1/devices/nope", headers=adam,
                        json={"criticality": "high"}).status_code == 404
    ingest(client, fault(device="case-01", state="cleared", seq=9))
    response = client.patch("/api/v1/stores/store-1/devices/case-01", headers=adam, json={"criticality": "high"})
    assert response.status_code == 200 and response.json()["criticality"] == "high"
    ingest(client, fault(device="case-01", seq=10), fault(device="case-02", seq=11))
    priorities = {t["device_id"]: t["priority"] for t in client.get("/api/v1/tickets", headers=dora).json()}
    assert priorities == {"case-01": 1, "case-02": 2}  # a food-safety case that matters more: priority 1


def test_replacing_priority_rules_is_validated_and_admin_only(client: TestClient) -> None:
    adam = login(client, "adam")
    rules = client.get("/api/v1/priority-rules", headers=adam).json()
    assert client.put("/api/v1/priority-rules", headers=login(client, "dora"), json={"rules": rules}).status_code == 403
    incomplete = [r for r in rules if not (r["fault_class"] == "comfort" and r["criticality"] == "normal")]
    response = client.put("/api/v1/priority-rules", headers=adam, json={"rules": incomplete})
    assert response.status_code == 422
    assert 'no "normal" criticality rule for comfort/' in response.json()["detail"][0]["msg"]
    response = client.put("/api/v1/priority-rules", headers=adam, json={"rules": rules + rules[:1]})
    assert response.status_code == 422 and "rules[80]: a second rule" in response.text
    bad = [{**rules[0], "priority": 6}] + rules[1:]
    assert client.put("/api/v1/priority-rules", headers=adam, json={"rules": bad}).status_code == 422
    only_normal = [{**r, "priority": 3} if r["fault_class"] == "food_safety" else r
                   for r in rules if r["criticality"] == "normal"]
    response = client.put("/api/v1/priority-rules", headers=adam, json={"rules": only_normal})
    assert response.status_code == 200 and len(response.json()) == 20
    ingest(client, fault())
    assert client.get("/api/v1/tickets", headers=adam).json()[0]["priority"] == 3


def test_sla_policies_are_read_and_updated_by_admins_with_validation(client: TestClient) -> None:
    adam = login(client, "adam")
    policies = client.get("/api/v1/sla-policies", headers=adam).json()
    assert len(policies) == 25
    food = next(p for p in policies if p["fault_class"] == "food_safety" and p["priority"] == 3)
    assert food["business_hours"] is False
    comfort = next(p for p in policies if p["fault_class"] == "comfort" and p["priority"] == 3)
    assert comfort["business_hours"] is True
    body = {"response_min": 20, "arrival_min": 90, "resolution_min": 300, "business_hours": False,
            "accept_window_min": 10, "escalation_interval_min": 15}
    url = "/api/v1/sla-policies/food_safety/2"
    assert client.put(url, headers=login(client, "dora"), json=body).status_code == 403
    response = client.put(url, headers=adam, json={**body, "business_hours": True})
    assert response.status_code == 422 and "business_hours" in response.text and "24/7" in response.text
    response = client.put(url, headers=adam, json={**body, "arrival_min": 10})
    assert response.status_code == 422 and "arrival_min" in response.text
    assert client.put("/api/v1/sla-policies/food_safety/9", headers=adam, json=body).status_code == 422
    ingest(client, fault())  # priority 2 food safety: response due at 30 min under the old policy
    [job] = client.get("/api/v1/tickets", headers=adam).json()
    response = client.put(url, headers=adam, json=body)
    assert response.status_code == 200 and response.json()["updated_by"] == "adam"
    sla = client.get(f"/api/v1/tickets/{job['id']}/sla", headers=adam).json()
    response_target = next(t for t in sla["targets"] if t["target"] == "response")
    assert response_target["allowed_min"] == 20 and response_target["due_at"].startswith("2026-01-05T08:20")
    with runtime(client).database.session() as session:  # the open ticket's timers were re-planned
        due = {t.key: t.due_at for t in timers.pending_for(session=session, ticket_id=job["id"])}
    assert due[f"sla:{job['id']}:response:breach"] == T0 + timedelta(minutes=20)
    assert due[f"sla:{job['id']}:accept"] == T0 + timedelta(minutes=10)


def test_store_calendar_put_get_delete_and_its_effect(client: TestClient) -> None:
    ingest(client, fault(device="light-01", model="unknown-model", fault_class="comfort", severity="major",
                         code="light_out"))  # comfort major: priority 4, business hours
    adam, stan = login(client, "adam"), login(client, "stan")
    url = "/api/v1/stores/store-1/calendar"
    assert client.get(url, headers=stan).json()["always_open"] is True
    calendar = {"timezone": "Europe/Berlin", "hours": {d: [["07:00", "22:00"]] for d in ("mon", "tue", "wed")},
                "holidays": ["2026-01-06"]}
    assert client.put(url, headers=stan, json=calendar).status_code == 403
    bad = client.put(url, headers=adam, json={**calendar, "hours": {"mon": [["22:00", "07:00"]]}})
    assert bad.status_code == 422 and "hours.mon[0]" in bad.text
    assert client.put(url, headers=adam, json={**calendar, "timezone": "Nowhere/Land"}).status_code == 422
    assert client.put("/api/v1/stores/nope/calendar", headers=adam, json=calendar).status_code == 404
    response = client.put(url, headers=adam, json=calendar)
    assert response.status_code == 200 and response.json()["always_open"] is False
    assert client.get(url, headers=stan).json()["hours"]["mon"] == [["07:00", "22:00"]]
    [job] = client.get("/api/v1/tickets", headers=adam).json()
    sla = client.get(f"/api/v1/tickets/{job['id']}/sla", headers=adam).json()
    assert sla["business_hours"] is True and sla["calendar_timezone"] == "Europe/Berlin"
    # created Mon 09:00 local; 240 min response: 13:00 local = 12:00 UTC
    response_target = next(t for t in sla["targets"] if t["target"] == "response")
    assert response_target["due_at"].startswith("2026-01-05T12:00")
    resolution = next(t for t in sla["targets"] if t["target"] == "resolution")
    # 2880 min = 48 h of open time: Mon 13 h, Tue a holiday, Wed 15 h, Thu-Sun closed, Mon 15 h, Tue 5 h
    assert resolution["due_at"].startswith("2026-01-13T11:00")
    assert client.delete(url, headers=adam).status_code == 204
    assert client.get(url, headers=stan).json()["always_open"] is True


def test_ticket_sla_figures_handheld_time_and_who_may_see_them(client: TestClient, clock: FakeClock) -> None:
    ingest(client, fault(device="case-01"), fault(device="case-02"))  # tina, rita
    tina, rita, dora = login(client, "tina"), login(client, "rita"), login(client, "dora")
    job = _job(client, tina)
    clock.advance(40 * 60)  # synced 40 min later; accepted offline after 10 min
    response = client.post(f"/api/v1/tickets/{job['id']}/accept", headers=tina,
                           json={"client_time": (T0 + timedelta(minutes=10)).isoformat(), "source": "handheld"})
    assert response.status_code == 200
    sla = client.get(f"/api/v1/tickets/{job['id']}/sla", headers=tina).json()
    response_target = next(t for t in sla["targets"] if t["target"] == "response")
    assert response_target["met_at"].startswith("2026-01-05T08:10") and not response_target["breached"]
    assert response_target["elapsed_min"] == 10 and response_target["remaining_min"] == 20
    arrival = next(t for t in sla["targets"] if t["target"] == "arrival")
    assert arrival["met_at"] is None and arrival["elapsed_min"] == 40 and arrival["due_at"].startswith("2026-01-05T12")
    assert client.get(f"/api/v1/tickets/{job['id']}/sla", headers=rita).status_code == 403
    assert client.get(f"/api/v1/tickets/{job['id']}/sla", headers=dora).status_code == 200
    # a dispatcher cannot claim handheld time
    other = _job(client, rita)
    response = client.post(f"/api/v1/tickets/{other['id']}/hold", headers=dora,
                           json={"reason": "store closed", "source": "handheld"})
    assert response.status_code == 403 and "handheld" in response.json()["detail"]


def test_priority_change_keeps_the_start_and_is_published(client: TestClient, clock: FakeClock) -> None:
    ingest(client, fault(fault_class="equipment", severity="minor"))  # priority 4
    dora, tina = login(client, "dora"), login(client, "tina")
    job = _job(client, dora)
    assert job["priority"] == 4
    clock.advance(50 * 60)
    url = f"/api/v1/tickets/{job['id']}/priority"
    assert client.post(url, headers=tina, json={"priority": 1, "reason": "x"}).status_code == 403
    assert client.post(url, headers=dora, json={"priority": 0, "reason": "x"}).status_code == 422
    response = client.post(url, headers=dora, json={"priority": 1, "reason": "store manager called"})
    assert response.status_code == 200 and response.json()["priority"] == 1
    sla = client.get(f"/api/v1/tickets/{job['id']}/sla", headers=dora).json()
    assert sla["started_at"].startswith("2026-01-05T08:00") and sla["priority"] == 1
    response_target = next(t for t in sla["targets"] if t["target"] == "response")
    assert response_target["breached"] and response_target["allowed_min"] == 15  # 50 min > 15 min since the start
    detail = client.get(f"/api/v1/tickets/{job['id']}", headers=dora).json()
    changed = next(e for e in detail["events"] if e["type"] == "priority_changed")
    assert changed["data"] == {"from": 4, "to": 1} and changed["actor"] == "dora"
    assert statuses(runtime(client).database, job["id"])[-1].priority == 1


def test_hold_await_parts_resume_over_http(client: TestClient) -> None:
    ingest(client, fault())
    tina, dora = login(client, "tina"), login(client, "dora")
    job = _job(client, tina)
    base = f"/api/v1/tickets/{job['id']}"
    assert client.post(f"{base}/hold", headers=dora, json={"reason": "no access"}).json()["status"] == "on_hold"
    assert client.post(f"{base}/accept", headers=tina).status_code == 409
    assert client.post(f"{base}/resume", headers=tina).json()["status"] == "assigned"
    for step in ("accept", "en-route", "arrive"):
        assert client.post(f"{base}/{step}", headers=tina).status_code == 200
    assert client.post(f"{base}/await-parts", headers=dora, json={"part": "fan motor"}).status_code == 403
    parts = client.post(f"{base}/await-parts", headers=tina, json={"part": "fan motor"}).json()
    assert parts["status"] == "awaiting_parts"
    sla = client.get(f"{base}/sla", headers=tina).json()
    assert sla["paused"] and sla["paused_from"] == "on_site"
    assert client.post(f"{base}/resume", headers=tina).json()["status"] == "on_site"
    sent = [s.status for s in statuses(runtime(client).database, job["id"])]
    assert S.ON_HOLD in sent and S.AWAITING_PARTS in sent
