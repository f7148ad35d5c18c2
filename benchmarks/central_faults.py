"""Central: fault -> ticket with two workers on PostgreSQL (issue 5, benchmark 1).

A private Mosquitto and PostgreSQL (fsync on); two central workers started as production
starts them (`storeguard central`, one shared subscription group, their own MQTT client ids,
timers on; `benchmarks.central_cluster`); 100 simulated stores, each its own MQTT connection
as a gateway has: it publishes contract-v1 FaultEvents at QoS 1 and subscribes to its own
ticket-status topic. 1,000 distinct faults at a steady rate, spread over the stores.
Measured per fault, all on this machine's UTC clock:

- fault -> stored: the event's occurred_at -> its inbox row's received_at (step one committed);
- fault -> ticket: occurred_at -> the ticket row's created_at (the worker's clock when it
  claimed the message to apply it; the commit follows);
- fault -> status at the store: occurred_at -> the first TicketStatus of that fault received
  by the store's own connection.

Goal (issue 5): p99 under 1 s. Run: python -m benchmarks.central_faults [--stores 100]
[--faults 1000] [--rate 20]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt

from benchmarks.central_cluster import CentralCluster, close_clients, mqtt_client
from protocols.mqtt.messages import FaultEvent
from protocols.mqtt.topics import TopicKind, topic

OUT = Path("var/bench")
# one ticket per fault event sent: not the store tasks a repair spawns, nor central's own incidents
DEVICE_TICKETS = " AND link IS DISTINCT FROM 'task' AND device_id <> 'store'"


def percentiles(values: list[float]) -> dict[str, float]:
    if len(values) < 2:
        return {"n": len(values), "p50_ms": 0.0, "p95_ms": 0.0, "p99_ms": 0.0, "max_ms": 0.0}
    ordered = sorted(values)
    cuts = statistics.quantiles(ordered, n=100, method="inclusive")
    return {"n": len(ordered), "p50_ms": 1000 * cuts[49], "p95_ms": 1000 * cuts[94], "p99_ms": 1000 * cuts[98],
            "max_ms": 1000 * ordered[-1]}


def machine() -> dict[str, Any]:
    return {"cpus": os.cpu_count(), "cpu": platform.processor() or platform.machine(),
            "python": platform.python_version(), "at": datetime.now(UTC).isoformat(timespec="seconds")}


def fault_event(store_id: str, device_id: str, seq: int, state: str, at: datetime) -> FaultEvent:
    return FaultEvent.model_validate(dict(
        store_id=store_id, seq=seq, device_id=device_id, device_model="dixell-xr75cx",
        fault_code="high_temperature", state=state, severity="major", fault_class="food_safety",
        ticket_class="repair", occurred_at=at, description="Cabinet air above the high limit",
        location="Aisle 1", evidence={"point": "air_temp", "value": 9.4, "limit": 8.0}))


def run(stores: int, faults: int, rate: float, workdir: Path, durable: bool = True) -> dict[str, Any]:
    received: dict[tuple[str, str], float] = {}
    lock = threading.Lock()

    def on_status(_c: mqtt.Client, _u: Any, message: mqtt.MQTTMessage) -> None:
        now = time.time()
        body = json.loads(message.payload)
        with lock:
            received.setdefault((body["store_id"], body["device_id"]), now)

    with CentralCluster(workdir, durable=durable) as cluster:
        print(f"  two central workers up (ports {cluster.ports}); {stores} stores connecting", flush=True)
        names = [f"bench-store-{i:03d}" for i in range(stores)]
        clients = [mqtt_client(f"gw-{name}", cluster.broker.port, on_message=on_status,
                               subscribe=topic(name, TopicKind.TICKET_STATUS)) for name in names]
        try:
            occurred: dict[tuple[str, str], float] = {}
            message_ids: dict[str, tuple[str, str]] = {}
            t0 = time.monotonic()
            for k in range(faults):
                store_index = k % stores
                key = (names[store_index], f"case-{k // stores:03d}")
                now = datetime.now(UTC)
                event = fault_event(key[0], key[1], k // stores + 1, "raised", now)
                occurred[key] = now.timestamp()
                message_ids[event.message_id] = key
                clients[store_index].publish(topic(key[0], TopicKind.FAULT), event.to_bytes(), qos=1)
                if (k + 1) % 200 == 0:
                    print(f"  published {k + 1}/{faults}", flush=True)
                delay = t0 + (k + 1) / rate - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
            publish_s = time.monotonic() - t0

            deadline = time.monotonic() + 300
            while time.monotonic() < deadline:
                made = cluster.scalar("SELECT count(*) FROM tickets WHERE true" + DEVICE_TICKETS)
                with lock:
                    statuses = sum(1 for key in received if key in occurred)  # not the incidents' "store"
                if made >= faults and statuses >= faults:
                    break
                time.sleep(0.5)
            rows = cluster.rows("SELECT store_id, device_id, created_at FROM tickets WHERE true" + DEVICE_TICKETS)
            duplicates = cluster.scalar("SELECT count(*) FROM (SELECT store_id, device_id, fault_code FROM tickets "
                                        "GROUP BY 1, 2, 3 HAVING count(*) > 1) d")
            inbound = cluster.rows("SELECT message_id, received_at FROM inbound_messages")
            applied = [cluster.counter(i, "storeguard_central_messages_accepted_total", kind="fault")
                       for i in range(len(cluster.ports))]
        finally:
            close_clients(clients)
    to_ticket = [r.created_at.timestamp() - occurred[(r.store_id, r.device_id)] for r in rows
                 if (r.store_id, r.device_id) in occurred]
    to_stored = [r.received_at.timestamp() - occurred[message_ids[r.message_id]] for r in inbound
                 if r.message_id in message_ids]
    with lock:
        to_store = [at - occurred[key] for key, at in received.items() if key in occurred]
    start = min(occurred.values())
    worst_by_second: dict[int, float] = {}
    for r in rows:
        at = occurred.get((r.store_id, r.device_id))
        if at is not None:
            second = int(at - start)
            worst_by_second[second] = max(worst_by_second.get(second, 0.0), r.created_at.timestamp() - at)
    return {
        "stores": stores, "faults": faults, "rate_per_s": rate, "published_in_s": round(publish_s, 2),
        "tickets": len(rows), "duplicate_tickets": duplicates, "statuses_at_store": len(to_store),
        "fault_to_stored": percentiles(to_stored), "fault_to_ticket": percentiles(to_ticket),
        "fault_to_store_status": percentiles(to_store), "faults_applied_per_worker": applied,
        "worst_fault_to_ticket_ms_by_second": {s: round(v * 1000, 1) for s, v in sorted(worst_by_second.items())},
        "postgresql": "fsync on, synchronous_commit on" if durable else "fsync off", "machine": machine(),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--stores", type=int, default=100)
    parser.add_argument("--faults", type=int, default=1000)
    parser.add_argument("--rate", type=float, default=20.0, help="faults per second, all stores together")
    parser.add_argument("--no-fsync", action="store_true", help="PostgreSQL with fsync off (as the test suites)")
    args = parser.parse_args(argv)
    print(f"central fault -> ticket: {args.faults} faults from {args.stores} stores at {args.rate:g}/s, "
          "two workers, Mosquitto + PostgreSQL", flush=True)
    result = run(args.stores, args.faults, args.rate, OUT / "central_faults", durable=not args.no_fsync)
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / f"central_faults_{args.rate:g}.json").write_text(json.dumps(result, indent=2))
    for name in ("fault_to_stored", "fault_to_ticket", "fault_to_store_status"):
        f = result[name]
        print(f"  {name}: n={f['n']} p50 {f['p50_ms']:.1f} ms  p95 {f['p95_ms']:.1f} ms  p99 {f['p99_ms']:.1f} ms  "
              f"max {f['max_ms']:.1f} ms")
    print(f"  tickets {result['tickets']}/{args.faults}, duplicates {result['duplicate_tickets']}, "
          f"faults applied per worker {result['faults_applied_per_worker']}")
    ok = result["tickets"] == args.faults and result["duplicate_tickets"] == 0
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
