"""`storeguard demo` (composition layer): the whole loop on one machine.

Embedded broker, central on SQLite, two simulated stores with their gateways; scripted
faults become tickets. `--check` plays the technician through the REST API and verifies
that every status reached the store.
"""

from __future__ import annotations

import shutil
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from storeguard.client import CentralClient
from storeguard.stack import DEMO_PASSWORD, Stack, StackPlan, StorePlan, plan_stack, wait_until

EXPECTED_AT_STORE = ("assigned", "accepted", "en_route", "on_site", "resolved")


def say(message: str) -> None:
    print(message, flush=True)


@dataclass(frozen=True)
class CheckResult:
    ticket: dict[str, Any]
    store: StorePlan
    timeline: list[tuple[str, float]]


def store_tickets(store: StorePlan) -> list[dict[str, Any]]:
    return list(httpx.get(f"{store.page_url}/api/tickets", timeout=2).json())


def find_assigned_repair(client: CentralClient) -> dict[str, Any] | None:
    for ticket in client.tickets():
        if ticket.get("ticket_class") == "repair" and ticket.get("status") == "assigned":
            return ticket
    return None


def run_check(plan: StackPlan, deadline: float) -> CheckResult:
    """Wait for a device-raised repair ticket, work it as its technician, confirm the store saw it all."""
    t0 = time.monotonic()
    timeline: list[tuple[str, float]] = []

    def remaining() -> float:
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError("the demo check ran out of time")
        return left

    with CentralClient(plan.central_url) as dispatcher:
        dispatcher.login("dispatch", DEMO_PASSWORD)
        say("... waiting for a simulated fault to become an assigned repair ticket")
        found: dict[str, Any] = {}

        def assigned() -> bool:
            ticket = find_assigned_repair(dispatcher)
            if ticket:
                found.update(ticket)
            return bool(ticket)

        wait_until(assigned, remaining(), "an assigned repair ticket", interval=0.5)
        ticket = dict(found)
        timeline.append(("ticket assigned", time.monotonic() - t0))
        detail = dispatcher.ticket(ticket["id"])
        assignee = detail.get("assignee") or {}
        username = assignee.get("username") if isinstance(assignee, dict) else None
        if not username:
            raise RuntimeError(f"ticket {ticket.get('number')} is assigned but names no technician: {detail}")
        say(f"ok  ticket {ticket['number']}: {ticket['store_id']} {ticket['device_id']} {ticket['fault_code']} "
            f"(priority {ticket['priority']}) assigned to {username}")

    store = next(s for s in plan.stores if s.store_id == ticket["store_id"])
    with CentralClient(plan.central_url) as tech:
        tech.login(username, plan.technicians[username])
        steps = [("accept", {}), ("en-route", {}), ("arrive", {}),
                 ("resolve", {"note": "Compressor contactor replaced, case pulling down", "resolution_code": "repaired"})]
        for action, body in steps:
            tech.act(ticket["id"], action, body)
            timeline.append((f"technician {action}", time.monotonic() - t0))
            say(f"ok  {username} -> {action}")

    def all_statuses_at_store() -> bool:
        remaining()
        for entry in store_tickets(store):
            if entry.get("ticket_id") == ticket["id"]:
                received = entry.get("statuses_received", [])
                return all(status in received for status in EXPECTED_AT_STORE)
        return False

    wait_until(all_statuses_at_store, remaining(), f"every status reaching {store.store_id}'s gateway")
    timeline.append(("all statuses at store", time.monotonic() - t0))
    push_thresholds(store, plan, remaining)
    timeline.append(("thresholds applied at store", time.monotonic() - t0))
    return CheckResult(ticket, store, timeline)


def push_thresholds(store: StorePlan, plan: StackPlan, remaining: Callable[[], float]) -> None:
    """Facilities tighten one case's high-temperature alarm centrally; wait for the store's ack."""
    with CentralClient(plan.central_url) as facilities:
        facilities.login("facilities", DEMO_PASSWORD)
        cases = [d for d in facilities.devices(store.store_id) if d.get("kind") == "refrigeration_controller"]
        if not cases:
            raise RuntimeError(f"central knows no refrigeration controller of {store.store_id} to configure: "
                               f"{[(d.get('device_id'), d.get('kind')) for d in facilities.devices(store.store_id)]}")
        device = cases[0]["device_id"]
        pushed = facilities.put_store_config(
            store.store_id, {device: {"high_temperature": {"limit": 7.0, "clear": 5.0, "delay_s": 600}}})
        version = pushed["desired"]["version"]
        say(f"ok  facilities set {store.store_id}/{device} high_temperature to 7.0 °C (clear 5.0, 10 min): "
            f"config version {version}")

        def applied() -> bool:
            remaining()
            state = httpx.get(f"{store.page_url}/api/state", timeout=2).json()
            status = facilities.store_config(store.store_id)
            return bool(status["in_sync"]) and (state.get("config") or {}).get("active_version") == version

        wait_until(applied, remaining(), f"{store.store_id} applying config version {version}", interval=0.5)
        say(f"ok  {store.store_id} applied config version {version} and central shows it in sync")


def _print_urls(plan: StackPlan) -> None:
    say("")
    say("StoreGuard demo is running:")
    say(f"  central API docs      {plan.central_url}/docs")
    say(f"  technician handheld   {plan.central_url}/app   (log in as ana, ben or chen; password {DEMO_PASSWORD})")
    say(f"  dispatcher login      dispatch / {DEMO_PASSWORD}   (admin / {DEMO_PASSWORD})")
    say(f"  facilities login      facilities / {DEMO_PASSWORD}   (PUT /api/v1/stores/<id>/config pushes thresholds)")
    for store in plan.stores:
        say(f"  {store.store_id} store page  {store.page_url}/   ({store.name})")
    say(f"  MQTT broker           {plan.mqtt_url}")
    say(f"  logs                  {plan.workdir / 'logs'}")
    say("Scripted faults start within 30 s (a case door left open, a dead compressor, a bill jam).")
    say("Press Ctrl-C to stop.")
    say("")


def _watch_tickets(plan: StackPlan, stack: Stack) -> None:
    """Print each new ticket and status change until interrupted."""
    seen: dict[int, str] = {}
    with CentralClient(plan.central_url) as client:
        client.login("dispatch", DEMO_PASSWORD)
        while True:
            for name in list(stack.procs.procs):
                if not stack.procs.running(name):
                    raise RuntimeError(f"{name} stopped unexpectedly:\n{stack.procs.tail(name)}")
            try:
                tickets = client.tickets()
            except httpx.HTTPError:
                tickets = []
            for ticket in tickets:
                status = ticket["status"]
                if seen.get(ticket["id"]) != status:
                    assignee = ticket.get("assignee_name") or ticket.get("assignee") or "-"
                    if isinstance(assignee, dict):
                        assignee = assignee.get("display_name") or assignee.get("username")
                    say(f"ticket {ticket['number']}  {ticket['store_id']}/{ticket['device_id']}  "
                        f"{ticket['fault_code']}  {ticket['ticket_class']}  priority {ticket['priority']}  "
                        f"{status}  ({assignee})")
                    seen[ticket["id"]] = status
            time.sleep(2)


def run_demo(*, workdir: Path, check: bool, timeout_s: float = 120.0) -> int:
    if workdir.exists():
        shutil.rmtree(workdir)  # a demo starts from an empty database every time
    plan = plan_stack(workdir, stable_ports=not check)
    stack = Stack(plan, echo=None)
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    started = time.monotonic()
    try:
        say(f"==> starting the embedded MQTT broker on {plan.mqtt_url}")
        stack.start_broker()
        say(f"==> starting central on {plan.central_url} (SQLite at {plan.database_url})")
        stack.start_central()
        for store in plan.stores:
            say(f"==> starting simulated devices for {store.store_id} (RTU on {store.tty_link}, "
                f"Modbus TCP on :{store.lanes_port})")
            stack.start_simulators(store)
        for store in plan.stores:
            say(f"==> starting the {store.store_id} gateway (store page {store.page_url}/)")
            stack.start_store(store)
        if not check:
            _print_urls(plan)
            _watch_tickets(plan, stack)
            return 0
        result = run_check(plan, started + timeout_s)
        say("")
        say(f"PASS: fault -> ticket {result.ticket['number']} -> assigned -> accepted -> en route -> on site -> "
            f"resolved, every status seen at {result.store.store_id}'s gateway; pushed thresholds applied there")
        for what, at in result.timeline:
            say(f"  {at:6.1f} s  {what}")
        return 0
    except KeyboardInterrupt:
        say("\n==> stopping")
        return 0
    except (TimeoutError, RuntimeError, httpx.HTTPError) as exc:
        say(f"FAIL: {exc}")
        say(f"Logs of every process are in {plan.workdir / 'logs'}")
        return 1
    finally:
        stack.stop_all()
        if check:
            say(f"demo check took {time.monotonic() - started:.1f} s")


if __name__ == "__main__":
    sys.exit(run_demo(workdir=Path("var/demo"), check="--check" in sys.argv))
