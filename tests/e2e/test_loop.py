"""End to end with real processes: simulator -> edge -> broker -> central -> ticket -> store.

Each test starts the same commands an operator runs (storeguard simulate / store / central).
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import pytest

from storeguard.client import CentralClient
from storeguard.stack import DEMO_PASSWORD, Stack, StorePlan, plan_stack, wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]


def test_demo_check_closes_the_loop(tmp_path: Path) -> None:
    """The README's `storeguard demo --check`: embedded broker, SQLite, two stores."""
    result = subprocess.run(
        [sys.executable, "-m", "storeguard", "demo", "--check", "--workdir", str(tmp_path / "demo")],
        capture_output=True, text=True, timeout=200, check=False,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "PASS" in output
    for status in ("accept", "en-route", "arrive", "resolve"):
        assert f"-> {status}" in output


def inject(store: StorePlan, device: str, fault: str, duration_s: float | None = None) -> None:
    body: dict[str, Any] = {"fault": fault}
    if duration_s is not None:
        body["duration_s"] = duration_s
    response = httpx.post(f"{store.control_url}/devices/{device}/faults", json=body, timeout=5)
    assert response.status_code < 300, response.text


def gateway_metric(store: StorePlan, name: str) -> float:
    text = httpx.get(f"{store.page_url}/metrics", timeout=2).text
    total = 0.0
    found = False
    for line in text.splitlines():
        if line.startswith(name) and (line[len(name)] in " {"):
            total += float(line.rsplit(" ", 1)[1])
            found = True
    if not found:
        raise AssertionError(f"metric {name} not exposed by the store page:\n{text[:2000]}")
    return total


def tickets_for(client: CentralClient, store_id: str, device_id: str, fault_code: str) -> list[dict[str, Any]]:
    return [t for t in client.tickets(store_id=store_id)
            if t["device_id"] == device_id and t["fault_code"] == fault_code]


@pytest.mark.mosquitto
@pytest.mark.postgres
def test_fault_survives_a_broker_outage_with_one_ticket(tmp_path: Path, mosquitto, postgres_url: str) -> None:  # type: ignore[no-untyped-def]
    """Mosquitto + PostgreSQL: the broker is down when the fault is detected; nothing is lost or doubled."""
    plan = plan_stack(tmp_path / "stack", mqtt_url=mosquitto.url, database_url=postgres_url,
                      store_count=1, scenario=False)
    store = plan.stores[0]
    stack = Stack(plan)
    try:
        stack.start_central()
        stack.start_simulators(store)
        stack.start_store(store)
        with CentralClient(plan.central_url) as client:
            client.login("dispatch", DEMO_PASSWORD)
            wait_until(lambda: gateway_metric(store, "storeguard_outbox_depth") == 0, 30, "the outbox draining")

            mosquitto.stop()  # graceful: the broker keeps central's persistent session
            inject(store, "lane-02", "bill_jam")
            wait_until(lambda: gateway_metric(store, "storeguard_outbox_faults") >= 1, 30,
                       "the fault event waiting in the store's outbox")
            time.sleep(2)  # a few reconnect attempts against the dead broker
            assert tickets_for(client, store.store_id, "lane-02", "bill_validator_jam") == []

            mosquitto.start()
            wait_until(lambda: len(tickets_for(client, store.store_id, "lane-02", "bill_validator_jam")) == 1,
                       60, "the ticket after the broker came back")
            ticket = tickets_for(client, store.store_id, "lane-02", "bill_validator_jam")[0]
            assert ticket["status"] == "assigned"

            # The store hears back about its ticket over the restarted broker.
            def store_knows() -> bool:
                entries = httpx.get(f"{store.page_url}/api/tickets", timeout=2).json()
                return any(e["ticket_id"] == ticket["id"] and "assigned" in e["statuses_received"] for e in entries)

            wait_until(store_knows, 30, "the ticket status reaching the store")
            wait_until(lambda: gateway_metric(store, "storeguard_outbox_depth") == 0, 30, "the outbox draining")
            time.sleep(3)  # let any redelivery arrive before counting
            all_tickets = client.tickets(store_id=store.store_id)
            keys = Counter((t["device_id"], t["fault_code"]) for t in all_tickets
                           if t["status"] not in ("resolved", "closed", "cancelled"))
            assert keys[("lane-02", "bill_validator_jam")] == 1
            assert all(count == 1 for count in keys.values()), keys
    finally:
        stack.stop_all()
