"""Offline store: an hour-equivalent of traffic while the broker is unreachable, then reconnect.

Real processes: a private Mosquitto, central (SQLite), a simulated store with 10 lanes and
3 cases, and its gateway. Time is compressed: the gateway sends a telemetry batch every
0.25 s instead of every 10 s, so 90 s of outage carries the 360 batches of an hour. During
the outage lane faults are injected and cleared (each makes a "raised" and a "cleared"
event). A subscriber with a persistent session, standing in for an auditor, records every
message that reaches the broker after it comes back.

Reported: fault events the gateway produced vs fault events delivered (unique message ids),
redeliveries, telemetry batches delivered vs produced and dropped, whether every fault
event arrived before the telemetry backlog, the drain time, and the tickets at central
(one per fault, no duplicates).

Run: python -m benchmarks.offline [--outage-s 90] [--faults 20]
"""

from __future__ import annotations

import argparse
import json
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import paho.mqtt.client as mqtt
import yaml
from paho.mqtt.enums import CallbackAPIVersion

from storeguard.client import CentralClient
from storeguard.stack import DEMO_PASSWORD, Stack, plan_stack, wait_until

TELEMETRY_INTERVAL_S = 0.25  # stands for 10 s: 40x compression


class Recorder:
    """Every fault and telemetry message reaching the broker, in arrival order."""

    def __init__(self, url: str) -> None:
        host, port = url.removeprefix("mqtt://").split(":")
        self.arrivals: list[tuple[float, str, dict[str, Any]]] = []
        self._lock = threading.Lock()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="bench-auditor", clean_session=False)
        self.client.username_pw_set("bench-auditor")
        self.client.reconnect_delay_set(min_delay=0.2, max_delay=0.5)  # type: ignore[arg-type]  # paho takes floats
        self.client.on_connect = lambda c, u, f, rc, p: c.subscribe(
            [("storeguard/v1/+/fault", 1), ("storeguard/v1/+/telemetry", 1)])
        self.client.on_message = self._on_message
        self.client.connect(host, int(port))
        self.client.loop_start()

    def _on_message(self, client: mqtt.Client, userdata: object, message: mqtt.MQTTMessage) -> None:
        with self._lock:
            self.arrivals.append((time.monotonic(), message.topic.rsplit("/", 1)[1], json.loads(message.payload)))

    def snapshot(self) -> list[tuple[float, str, dict[str, Any]]]:
        with self._lock:
            return list(self.arrivals)

    def stop(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


def metric(page_url: str, name: str, label: str = "") -> float:
    total = 0.0
    for line in httpx.get(f"{page_url}/metrics", timeout=5).text.splitlines():
        if line.startswith(name) and line[len(name)] in " {" and label in line:
            total += float(line.rsplit(" ", 1)[1])
    return total


def run(workdir: Path, outage_s: float, faults: int) -> dict[str, Any]:
    from tests.support.services import MosquittoProcess

    broker = MosquittoProcess(workdir / "mosquitto")
    broker.start()
    layout = {"name": "Offline store",
              "cases": [(f"case-{i:02d}", i, "dixell-xr75cx", f"Aisle {i}", 3.0) for i in range(1, 4)],
              "lanes": [(f"lane-{i:02d}", i, f"Lane {i}") for i in range(1, 11)], "scenario": []}
    plan = plan_stack(workdir / "stack", mqtt_url=broker.url, store_count=1, scenario=False, layouts=[layout])
    store = plan.stores[0]
    config = yaml.safe_load(store.store_config.read_text())
    config["telemetry_interval_s"] = TELEMETRY_INTERVAL_S
    store.store_config.write_text(yaml.safe_dump(config, sort_keys=False))
    stack = Stack(plan)
    recorder: Recorder | None = None
    back_box: list[float] = []
    try:
        print("    starting Mosquitto, central, simulators and the gateway", flush=True)
        stack.start_all()
        recorder = Recorder(broker.url)
        wait_until(lambda: metric(store.page_url, "storeguard_outbox_depth") == 0, 30, "the outbox draining")
        faults_before = metric(store.page_url, "storeguard_gateway_fault_events_total")
        batches_before = metric(store.page_url, "storeguard_gateway_telemetry_batches_total")
        print(f"    broker down for {outage_s:.0f} s (= {outage_s * 10 / TELEMETRY_INTERVAL_S / 3600:.1f} h "
              f"of 10 s telemetry); injecting {faults} lane faults", flush=True)
        broker.stop()
        cut = time.monotonic()
        lane_faults = ["bill_jam", "cutter_error"]
        with httpx.Client(timeout=5) as control:
            for n in range(faults):
                device = f"lane-{1 + n % 10:02d}"
                control.post(f"{store.control_url}/devices/{device}/faults",
                             json={"fault": lane_faults[(n // 10) % 2], "duration_s": 6}).raise_for_status()
                time.sleep(outage_s * 0.8 / faults)
        time.sleep(max(0.0, outage_s - (time.monotonic() - cut)))
        produced_faults = metric(store.page_url, "storeguard_gateway_fault_events_total") - faults_before
        produced_batches = metric(store.page_url, "storeguard_gateway_telemetry_batches_total") - batches_before
        depth = metric(store.page_url, "storeguard_outbox_depth")
        print(f"    outbox holds {depth:.0f} messages ({produced_faults:.0f} fault events); broker back", flush=True)
        arrivals_before = len(recorder.snapshot())
        broker.start()
        back = time.monotonic()
        back_box.append(back)
        wait_until(lambda: metric(store.page_url, "storeguard_outbox_depth") <= 1, 300, "the backlog draining",
                   interval=0.25)
        drained_s = time.monotonic() - back
        expected = produced_faults

        def auditor_has_faults() -> bool:
            got = {p["message_id"] for _, kind, p in recorder.snapshot()[arrivals_before:] if kind == "fault"}
            return len(got) >= expected

        try:
            wait_until(auditor_has_faults, 30, "the auditor receiving the fault events", interval=0.25)
        except TimeoutError:
            pass  # reported as lost below
        time.sleep(2)
        arrivals = recorder.snapshot()[arrivals_before:]
        produced_batches = metric(store.page_url, "storeguard_gateway_telemetry_batches_total") - batches_before
        dropped = metric(store.page_url, "storeguard_outbox_dropped_total", 'kind="telemetry"')
        with CentralClient(plan.central_url) as client:
            client.login("dispatch", DEMO_PASSWORD)
            wait_until(lambda: len(client.tickets(limit="500")) >= 1, 30, "tickets at central")
            time.sleep(2)
            tickets = client.tickets(limit="500")
    finally:
        if recorder:
            recorder.stop()
        stack.stop_all()
        broker.kill()

    back = back_box[0]
    fault_ids = Counter(p["message_id"] for _, kind, p in arrivals if kind == "fault")
    outage_batches = [(at, p) for at, kind, p in arrivals if kind == "telemetry"]
    fault_times = [at for at, kind, _ in arrivals if kind == "fault"]
    first_backlog_batch = min((at for at, _ in outage_batches), default=float("inf"))
    times = [at for at, _, _ in arrivals]
    reconnect_s = (min(times) - back) if times else float("nan")
    delivery_s = (max(times) - min(times)) if times else float("nan")
    messages = len(arrivals)
    keys = Counter((t["device_id"], t["fault_code"], t["first_raised_at"]) for t in tickets)
    open_keys = Counter((t["device_id"], t["fault_code"]) for t in tickets
                        if t["status"] not in ("resolved", "closed", "cancelled"))
    return {
        "outage_s": outage_s,
        "telemetry_interval_s": TELEMETRY_INTERVAL_S,
        "fault_events_produced": int(produced_faults),
        "fault_events_delivered_unique": len(fault_ids),
        "fault_events_redelivered": sum(fault_ids.values()) - len(fault_ids),
        "fault_events_lost": int(produced_faults) - len(fault_ids),
        "telemetry_batches_produced": int(produced_batches),
        "telemetry_batches_delivered_unique": len({p["message_id"] for _, p in outage_batches}),
        "telemetry_dropped": int(dropped),
        "all_faults_before_telemetry_backlog": bool(fault_times) and max(fault_times) <= first_backlog_batch,
        "broker_back_to_outbox_empty_s": drained_s,
        "broker_back_to_first_delivery_s": reconnect_s,
        "first_to_last_delivery_s": delivery_s,
        "messages_delivered_to_auditor": messages,
        "tickets": len(tickets),
        "duplicate_tickets": sum(c - 1 for c in keys.values()) + sum(c - 1 for c in open_keys.values()),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--outage-s", type=float, default=90.0)
    parser.add_argument("--faults", type=int, default=20)
    parser.add_argument("--out", type=Path, default=Path("var/bench"))
    args = parser.parse_args(argv)
    workdir = args.out / "offline"
    if workdir.exists():
        import shutil

        shutil.rmtree(workdir)
    result = run(workdir, args.outage_s, args.faults)
    for key, value in result.items():
        print(f"  {key:38} {value:.2f}" if isinstance(value, float) else f"  {key:38} {value}")
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "offline.json").write_text(json.dumps(result, indent=2))
    ok = result["fault_events_lost"] == 0 and result["duplicate_tickets"] == 0
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
