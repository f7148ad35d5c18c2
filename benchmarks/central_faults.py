"""Central: fault -> ticket with two workers on PostgreSQL (issue 5, benchmark 1).

A private Mosquitto and PostgreSQL; two central workers started as production starts them
(`storeguard central`, one shared subscription group, their own MQTT client ids); 100
simulated stores, each its own MQTT connection publishing contract-v1 FaultEvents at QoS 1 as
a gateway does; 1,000 distinct faults at a steady rate. Measured per fault:

- fault -> ticket: the event's occurred_at -> the ticket row's created_at (both UTC clocks of
  this machine);
- fault -> status at the store: occurred_at -> the first TicketStatus of that ticket received
  on the store's downlink topic (a subscriber standing in for the stores).

Goal (issue 5): p99 under 1 s. Run: python -m benchmarks.central_faults [--stores 100]
[--faults 1000] [--rate 50]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import paho.mqtt.client as mqtt
from sqlalchemy import text

from central.auth.passwords import hash_password
from central.db import create_db_engine, migrate
from protocols.mqtt.messages import FaultEvent
from protocols.mqtt.topics import TopicKind, topic
from storeguard.stack import free_port
from tests.support.services import MosquittoProcess, PostgresCluster

OUT = Path("var/bench")


def percentiles(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    cuts = statistics.quantiles(ordered, n=100, method="inclusive")
    return {"n": len(ordered), "p50_ms": 1000 * cuts[49], "p95_ms": 1000 * cuts[94], "p99_ms": 1000 * cuts[98],
            "max_ms": 1000 * ordered[-1]}


def _seed(path: Path) -> None:
    digest = hash_password("bench-password-1")
    lines = ["technicians:"]
    for i in range(20):
        lines.append(f"  - {{username: tech{i:02d}, display_name: Tech {i}, password_hash: \"{digest}\", "
                     "skills: [refrigeration], region: north}")
    path.write_text("\n".join(lines) + "\n")


def _client(client_id: str, url: str) -> mqtt.Client:
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=True)
    client.username_pw_set(client_id)
    port = int(url.rsplit(":", 1)[1])
    client.connect("127.0.0.1", port, keepalive=30)
    client.loop_start()
    return client


def _worker(index: int, db_url: str, mqtt_url: str, seed: Path, port: int, log: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "STOREGUARD_MQTT_CLIENT_ID": f"bench-central-{index}", "STOREGUARD_TIMERS_ENABLED": "true"}
    command = [sys.executable, "-m", "storeguard", "central", "--database-url", db_url, "--mqtt-url", mqtt_url,
               "--mqtt-share-group", "central", "--host", "127.0.0.1", "--port", str(port), "--seed", str(seed)]
    return subprocess.Popen(command, env=env, stdout=log.open("ab"), stderr=subprocess.STDOUT)


def _wait_healthy(port: int, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            body = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2).json()
            if body.get("status") == "ok" and set(body["mqtt"].values()) == {"connected"}:
                return
        except (httpx.HTTPError, ValueError, KeyError):
            pass
        time.sleep(0.3)
    raise RuntimeError(f"central worker on port {port} did not become healthy in {timeout:.0f} s")


def _accepted(port: int) -> float:
    total = 0.0
    for line in httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text.splitlines():
        if line.startswith('storeguard_central_messages_accepted_total{kind="fault"}'):
            total += float(line.split()[-1])
    return total


def run(stores: int, faults: int, rate: float, workdir: Path) -> dict[str, Any]:
    workdir.mkdir(parents=True, exist_ok=True)
    broker = MosquittoProcess(max_inflight_messages=1000)
    cluster = PostgresCluster()
    workers: list[subprocess.Popen[bytes]] = []
    clients: list[mqtt.Client] = []
    try:
        broker.start()
        cluster.start()
        db_url = cluster.create_database()
        migrate(db_url)
        seed = workdir / "seed.yaml"
        _seed(seed)
        ports = [free_port(), free_port()]
        workers = [_worker(i, db_url, broker.url, seed, port, workdir / f"central-{i}.log")
                   for i, port in enumerate(ports)]
        for port in ports:
            _wait_healthy(port)
        print(f"  two central workers up (ports {ports}); {stores} stores connecting", flush=True)

        received: dict[tuple[str, str, str], float] = {}
        lock = threading.Lock()

        def on_message(_c: mqtt.Client, _u: Any, message: mqtt.MQTTMessage) -> None:
            now = time.time()
            body = json.loads(message.payload)
            key = (body["store_id"], body["device_id"], body["fault_code"])
            with lock:
                received.setdefault(key, now)

        listener = _client("bench-store-listener", broker.url)
        listener.on_message = on_message
        listener.subscribe(f"storeguard/v1/+/{TopicKind.TICKET_STATUS.value}", qos=1)
        clients.append(listener)
        publishers = [_client(f"bench-store-{i:03d}", broker.url) for i in range(stores)]
        clients.extend(publishers)
        time.sleep(1.0)

        occurred: dict[tuple[str, str, str], float] = {}
        t0 = time.monotonic()
        for k in range(faults):
            store_index = k % stores
            store_id = f"bench-store-{store_index:03d}"
            device_id = f"case-{k // stores:03d}"
            now = datetime.now(UTC)
            event = FaultEvent.model_validate(dict(
                store_id=store_id, seq=k // stores + 1, device_id=device_id, device_model="dixell-xr75cx",
                fault_code="high_temperature", state="raised", severity="major", fault_class="food_safety",
                ticket_class="repair", occurred_at=now, description="Cabinet air above the high limit",
                location="Aisle 1", evidence={"point": "air_temp", "value": 9.4, "limit": 8.0}))
            occurred[(store_id, device_id, "high_temperature")] = now.timestamp()
            publishers[store_index].publish(topic(store_id, TopicKind.FAULT), event.to_bytes(), qos=1)
            if (k + 1) % 200 == 0:
                print(f"  published {k + 1}/{faults}", flush=True)
            delay = t0 + (k + 1) / rate - time.monotonic()
            if delay > 0:
                time.sleep(delay)

        engine = create_db_engine(db_url)
        deadline = time.monotonic() + 120
        rows: list[Any] = []
        while time.monotonic() < deadline:
            with engine.connect() as connection:
                rows = list(connection.execute(text(
                    "SELECT store_id, device_id, fault_code, created_at FROM tickets")))
            with lock:
                statuses = len(received)
            if len(rows) >= faults and statuses >= faults:
                break
            time.sleep(0.5)
        with engine.connect() as connection:
            duplicates = connection.execute(text(
                "SELECT count(*) FROM (SELECT store_id, device_id, fault_code FROM tickets "
                "GROUP BY 1, 2, 3 HAVING count(*) > 1) d")).scalar_one()
        engine.dispose()
        to_ticket = [row.created_at.timestamp() - occurred[(row.store_id, row.device_id, row.fault_code)]
                     for row in rows if (row.store_id, row.device_id, row.fault_code) in occurred]
        with lock:
            to_store = [at - occurred[key] for key, at in received.items() if key in occurred]
        per_worker = [_accepted(port) for port in ports]
        return {
            "stores": stores, "faults": faults, "rate_per_s": rate, "tickets": len(rows),
            "duplicate_tickets": duplicates, "statuses_at_store": len(to_store),
            "fault_to_ticket": percentiles(to_ticket), "fault_to_store_status": percentiles(to_store),
            "faults_applied_per_worker": per_worker,
            "machine": {"cpus": os.cpu_count(), "cpu": platform.processor() or platform.machine(),
                        "python": platform.python_version()},
        }
    finally:
        for client in clients:
            client.loop_stop()
            client.disconnect()
        for worker in workers:
            worker.terminate()
        for worker in workers:
            try:
                worker.wait(timeout=15)
            except subprocess.TimeoutExpired:
                worker.kill()
        broker.kill()
        cluster.cleanup()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--stores", type=int, default=100)
    parser.add_argument("--faults", type=int, default=1000)
    parser.add_argument("--rate", type=float, default=50.0, help="faults per second, all stores together")
    args = parser.parse_args(argv)
    print(f"central fault -> ticket: {args.faults} faults from {args.stores} stores at {args.rate:g}/s, "
          "two workers, Mosquitto + PostgreSQL", flush=True)
    result = run(args.stores, args.faults, args.rate, OUT / "central_faults")
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "central_faults.json").write_text(json.dumps(result, indent=2))
    for name in ("fault_to_ticket", "fault_to_store_status"):
        f = result[name]
        print(f"  {name}: n={f['n']} p50 {f['p50_ms']:.1f} ms  p95 {f['p95_ms']:.1f} ms  p99 {f['p99_ms']:.1f} ms  "
              f"max {f['max_ms']:.1f} ms")
    print(f"  tickets {result['tickets']}/{args.faults}, duplicates {result['duplicate_tickets']}, "
          f"faults applied per worker {result['faults_applied_per_worker']}")
    ok = result["tickets"] == args.faults and result["duplicate_tickets"] == 0
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
