"""Fault -> ticket -> store latency through the real processes.

One simulated store with 50 self-checkout lanes on Modbus TCP polled every second, its
gateway, a broker, and central on SQLite. The benchmark injects 100 faults (a bill jam and
a cutter error on each lane, both rules without delay), one every 0.25 s, and measures per
fault:

- detection:        fault injected in the simulator -> edge raised it (includes the 1 s poll)
- fault -> ticket:  edge raised it -> central committed the ticket (outbox, MQTT, ingest)
- ticket -> store:  central committed a status change -> the store's gateway stored it
                    (central's outbox publisher, MQTT, gateway downlink), for every status
                    of those tickets that reached the store.

Run: python -m benchmarks.loop_latency [--broker mosquitto|amqtt|both] [--faults 100]
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx

from storeguard.client import CentralClient
from storeguard.stack import DEMO_PASSWORD, Stack, StackPlan, plan_stack, wait_until

LANES = 50
CODES = {"bill_jam": "bill_validator_jam", "cutter_error": "printer_cutter_error"}


def layout() -> dict[str, Any]:
    return {
        "name": "Benchmark store",
        "cases": [("case-01", 1, "dixell-xr75cx", "Aisle 1", 3.0)],
        "lanes": [(f"lane-{i:02d}", i, f"Self-checkout lane {i}") for i in range(1, LANES + 1)],
        "scenario": [],
    }


def percentiles(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    cuts = statistics.quantiles(ordered, n=100, method="inclusive")
    return {"n": len(ordered), "p50_ms": 1000 * cuts[49], "p95_ms": 1000 * cuts[94],
            "max_ms": 1000 * ordered[-1], "mean_ms": 1000 * statistics.fmean(ordered)}


def _ts(value: str) -> float:
    return datetime.fromisoformat(value).timestamp()


def run_once(workdir: Path, broker: str, faults: int) -> dict[str, Any]:
    mosquitto = None
    mqtt_url = None
    if broker == "mosquitto":
        from tests.support.services import MosquittoProcess

        mosquitto = MosquittoProcess(workdir / "mosquitto")
        mosquitto.start()
        mqtt_url = mosquitto.url
    plan: StackPlan = plan_stack(workdir / "stack", mqtt_url=mqtt_url, store_count=1, scenario=False,
                                 layouts=[layout()])
    store = plan.stores[0]
    stack = Stack(plan)
    try:
        print(f"    starting broker ({broker}), central, simulators and gateway", flush=True)
        stack.start_all()
        time.sleep(3)  # first polls, health and telemetry settle
        injected: dict[tuple[str, str], float] = {}
        pairs = [(f"lane-{1 + i % LANES:02d}", list(CODES)[i // LANES % len(CODES)]) for i in range(faults)]
        with httpx.Client(timeout=5) as control:
            for n, (device, fault) in enumerate(pairs, 1):
                injected[(device, CODES[fault])] = time.time()
                response = control.post(f"{store.control_url}/devices/{device}/faults", json={"fault": fault})
                response.raise_for_status()
                if n % 20 == 0:
                    print(f"    injected {n}/{faults} faults", flush=True)
                time.sleep(0.25)
        with CentralClient(plan.central_url) as client:
            client.login("dispatch", DEMO_PASSWORD)

            def ours() -> list[dict[str, Any]]:
                return [t for t in client.tickets(limit="500") if (t["device_id"], t["fault_code"]) in injected]

            wait_until(lambda: len(ours()) >= faults, 120, f"{faults} tickets at central", interval=1)
            tickets = ours()

        def store_has_all() -> bool:
            entries = httpx.get(f"{store.page_url}/api/tickets", timeout=5).json()
            got = {e["ticket_id"] for e in entries if "assigned" in e["statuses_received"]}
            return all(t["id"] in got for t in tickets)

        wait_until(store_has_all, 120, "every ticket's status at the store", interval=1)
        entries = {e["ticket_id"]: e for e in httpx.get(f"{store.page_url}/api/tickets", timeout=5).json()}
    finally:
        stack.stop_all()
        if mosquitto:
            mosquitto.kill()

    detection: list[float] = []
    to_ticket: list[float] = []
    to_store: list[float] = []
    end_to_end: list[float] = []
    duplicates = len(tickets) - len({(t["device_id"], t["fault_code"]) for t in tickets})
    for ticket in tickets:
        t_inject = injected[(ticket["device_id"], ticket["fault_code"])]
        raised = _ts(ticket["first_raised_at"])
        created = _ts(ticket["created_at"])
        detection.append(raised - t_inject)
        to_ticket.append(created - raised)
        receipts = entries[ticket["id"]]["received"]
        to_store.extend(r["received_at"] - r["changed_at"] for r in receipts)
        assigned = next(r for r in receipts if r["status"] == "assigned")
        end_to_end.append(assigned["received_at"] - t_inject)
    return {
        "broker": broker,
        "faults": faults,
        "tickets": len(tickets),
        "duplicate_tickets": duplicates,
        "detection": percentiles(detection),
        "fault_to_ticket": percentiles(to_ticket),
        "ticket_to_store": percentiles(to_store),
        "inject_to_store_assigned": percentiles(end_to_end),
    }


def report(result: dict[str, Any]) -> None:
    print(f"\n  broker {result['broker']}: {result['tickets']} tickets for {result['faults']} faults, "
          f"{result['duplicate_tickets']} duplicates")
    print(f"  {'measure':34} {'n':>4} {'p50 ms':>8} {'p95 ms':>8} {'max ms':>8}")
    for key, label in [("fault_to_ticket", "fault raised -> ticket committed"),
                       ("ticket_to_store", "status change -> at the store"),
                       ("detection", "injected -> raised (1 s polling)"),
                       ("inject_to_store_assigned", "injected -> 'assigned' at store")]:
        row = result[key]
        print(f"  {label:34} {row['n']:>4} {row['p50_ms']:>8.1f} {row['p95_ms']:>8.1f} {row['max_ms']:>8.1f}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--broker", choices=["mosquitto", "amqtt", "both"], default="both")
    parser.add_argument("--faults", type=int, default=100)
    parser.add_argument("--out", type=Path, default=Path("var/bench"))
    args = parser.parse_args(argv)
    brokers = ["mosquitto", "amqtt"] if args.broker == "both" else [args.broker]
    results = []
    for broker in brokers:
        workdir = args.out / f"loop-{broker}"
        if workdir.exists():
            import shutil

            shutil.rmtree(workdir)
        result = run_once(workdir, broker, args.faults)
        report(result)
        results.append(result)
    machine = {"cpus": __import__("os").cpu_count(), "python": platform.python_version(),
               "platform": platform.platform()}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "loop_latency.json").write_text(json.dumps({"machine": machine, "results": results}, indent=2))
    print(f"\n  results in {args.out / 'loop_latency.json'}")
    return 0 if all(r["duplicate_tickets"] == 0 and r["tickets"] == r["faults"] for r in results) else 1


if __name__ == "__main__":
    raise SystemExit(main())
