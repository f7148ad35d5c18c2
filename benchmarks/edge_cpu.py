"""Edge CPU: the store process's CPU time per 1,000 values delivered, read-to-publish latency, RSS.

A simulator process serves 200 devices of ten contiguous holding registers each on Modbus TCP
(4 endpoints x 50 unit ids, as Modbus TCP gateways serve many units behind one endpoint). The
real store process (`python -m storeguard store`) polls every device once a second (one
10-register read per device; each endpoint is its own bus, so its own scheduler, the four
started a quarter of a second apart) and publishes one telemetry batch per bus per second
(500 values each, 2,000 per second in all; telemetry_interval_s 1) to a private Mosquitto
broker, through its outbox (SQLite) at QoS 1. A paho subscriber in this
process counts the values delivered (points that carry a value) in the batches it receives.

Measured in a steady window (default 60 s) after a warm-up:

- CPU ms per 1,000 values: the store process's user + system CPU time (/proc/<pid>/stat)
  over the window, divided by the values the subscriber received in that window. Everything
  the store process does is in it: Modbus polling and decoding, fault rules, snapshots,
  building and validating the batch, the outbox (SQLite write + delete), MQTT publish, the
  /metrics requests at the window's two ends. The simulator's and the broker's CPU are
  reported separately; they are not StoreGuard's cost.
- RSS: VmRSS of the store process (/proc/<pid>/status) at the end of the window.
- Cycle overruns: storeguard_edge_bus_overruns_total from the store's GET /metrics (cycles
  that took longer than the 1 s poll interval), with cycles and the last cycle time per bus.

Latency, two figures (both on this machine's one wall clock):

- batch -> subscriber (in the CPU window): from the batch's `taken_at` (the gateway's clock
  when its telemetry timer built the batch from the latest snapshots) to the subscriber's
  receipt. Spans: building and validating the batch, the outbox write, the sender picking
  it up, MQTT publish, the broker, delivery to the subscriber, the subscriber's JSON parse.
  It does NOT include the age of the values when the batch was built. A batch's bus is
  told by its devices' ids (dev-<bus>-<unit>); the telemetry period is per bus.
- read -> subscriber (a separate window, default 60 s, after the CPU window): per value,
  from its device's read (the snapshot's `read_at`, when that device's poll completed, i.e.
  after the response was decoded) to the subscriber's receipt. Per-device read times are not
  in the batch, so the benchmark polls GET /api/state every 0.2 s to record every device's
  `read_at` (each lasts ~1 s, so none is missed) and pairs each point of a batch with its
  device's latest `read_at` not after the batch's `taken_at`. This is the figure comparable
  to ThingsBoard's read-to-MQTT. It includes the wait for the rest of the poll cycle (a bus's
  batch is built once every online device of that bus has been polled again, so a value read
  early in the cycle waits for its end: about half a cycle on average). It does not include the Modbus
  request's round trip before the response (about 1 ms per read here: a bus's cycle time / 50).
  The pairing is exact because the edge stores a device's snapshot in the same event-loop step
  that stamps its `read_at`. The /api/state polling costs the store CPU, which is why it runs
  outside the CPU window.

Run: python -m benchmarks.edge_cpu [--seconds 60] [--warmup 10] [--age-seconds 60]
                                   [--buses 4] [--units-per-bus 50]
"""

from __future__ import annotations

import argparse
import bisect
import json
import os
import platform
import socket
import statistics
import tempfile
import threading
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import paho.mqtt.client as mqtt
import yaml

from storeguard.stack import ProcessGroup, free_port, wait_until
from benchmarks.profiles import REGISTERS, write_bench_profile

STORE_ID = "bench-edge"
TICK = os.sysconf("SC_CLK_TCK")


# ThingsBoard IoT Gateway 3.8.5 on this kind of machine (issue 4's reference, not measured here)
TB_CPU_MS_PER_1000 = {"one request per register": (166.0, 193.0), "10-register range reads": (68.0, 78.0)}
TB_READ_TO_MQTT_P50_MS = 170.0


def cpu_times(pid: int) -> tuple[float, float]:
    """(utime, stime) of one process (not its children), in seconds."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2:].split()  # after "pid (comm) "; fields[0] is state (field 3)
    return int(fields[11]) / TICK, int(fields[12]) / TICK


def cpu_seconds(pid: int) -> float:
    """utime + stime of one process (not its children), in seconds."""
    return sum(cpu_times(pid))


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def percentiles(values: list[float]) -> dict[str, float]:
    if len(values) < 2:
        return {"n": len(values)}
    ordered = sorted(values)
    cuts = statistics.quantiles(ordered, n=100, method="inclusive")
    return {"n": len(ordered), "p50_ms": 1000 * cuts[49], "p95_ms": 1000 * cuts[94],
            "max_ms": 1000 * ordered[-1], "mean_ms": 1000 * statistics.fmean(ordered)}


def parse_metrics(text: str) -> dict[str, list[tuple[dict[str, str], float]]]:
    out: dict[str, list[tuple[dict[str, str], float]]] = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        head, _, value = line.rpartition(" ")
        name, labels = head, {}
        if "{" in head:
            name, _, rest = head.partition("{")
            for part in rest.rstrip("}").split(","):
                if "=" in part:
                    k, _, v = part.partition("=")
                    labels[k] = v.strip('"')
        try:
            out.setdefault(name, []).append((labels, float(value)))
        except ValueError:
            pass
    return out


def bus_metrics(metrics: dict[str, list[tuple[dict[str, str], float]]]) -> dict[str, dict[str, float]]:
    buses: dict[str, dict[str, float]] = {}
    for name, rows in metrics.items():
        if name.startswith("storeguard_edge_bus_"):
            for labels, value in rows:
                buses.setdefault(labels.get("bus", "?"), {})[name.removeprefix("storeguard_edge_bus_")] = value
    return buses


def metric_sum(metrics: dict[str, list[tuple[dict[str, str], float]]], name: str) -> float:
    return sum(v for _, v in metrics.get(name, []))


class Subscriber:
    """Counts telemetry batches and values; keeps (receipt time, taken_at, points) per batch."""

    def __init__(self, url_port: int) -> None:
        self.lock = threading.Lock()
        self.batches: list[dict[str, Any]] = []
        self.subscribed = threading.Event()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="sg-bench-edge-cpu")
        self.client.on_connect = self._on_connect
        self.client.on_subscribe = lambda *a: self.subscribed.set()
        self.client.on_message = self._on_message
        self.port = url_port

    def _on_connect(self, client: mqtt.Client, userdata: Any, flags: Any, rc: Any, props: Any = None) -> None:
        client.subscribe(f"storeguard/v1/{STORE_ID}/telemetry", qos=1)

    def _on_message(self, client: mqtt.Client, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        received = time.time()
        data = json.loads(msg.payload)
        points = data.get("points", [])
        batch = {"received": received, "taken_at": datetime.fromisoformat(data["taken_at"]).timestamp(),
                 "seq": data.get("seq"), "points": len(points),
                 "bus": points[0]["device_id"].rsplit("-", 1)[0] if points else "",
                 "values": sum(1 for p in points if p.get("value") is not None),
                 "devices": [p["device_id"] for p in points if p.get("value") is not None]}
        with self.lock:
            self.batches.append(batch)

    def start(self) -> None:
        self.client.connect("127.0.0.1", self.port)
        self.client.loop_start()
        if not self.subscribed.wait(10):
            raise RuntimeError("the subscriber could not subscribe")

    def stop(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()

    def between(self, start: float, end: float) -> list[dict[str, Any]]:
        with self.lock:
            return [b for b in self.batches if start <= b["received"] < end]


def write_configs(workdir: Path, mqtt_port: int, buses: int, units: int) -> tuple[Path, Path, list[int], int]:
    profiles = workdir / "profiles"
    write_bench_profile(profiles, timeout_ms=500)
    ports = [free_port() for _ in range(buses)]
    http_port = free_port()

    def devices(b: int) -> list[dict[str, Any]]:
        return [{"id": f"dev-{b + 1}-{u:02d}", "unit": u, "profile": "bench-10reg"} for u in range(1, units + 1)]

    sim_config = workdir / "simulators.yaml"
    sim_config.write_text(yaml.safe_dump({
        "time_scale": 1, "control": {"enabled": False}, "profiles_dirs": [str(profiles)],
        "buses": [{"name": f"tcp-{b + 1}", "transport": "tcp", "host": "127.0.0.1", "port": ports[b],
                   "devices": devices(b)} for b in range(buses)],
    }))
    store_config = workdir / "store.yaml"
    store_config.write_text(yaml.safe_dump({
        "store_id": STORE_ID, "name": "Edge CPU benchmark store",
        "mqtt": {"url": f"mqtt://127.0.0.1:{mqtt_port}"},
        "outbox": {"path": str(workdir / "outbox.db")},
        "http": {"host": "127.0.0.1", "port": http_port},
        "telemetry_interval_s": 1,
        "profiles_dirs": [str(profiles)],
        "buses": [{"name": f"tcp-{b + 1}", "transport": "tcp", "host": "127.0.0.1", "tcp_port": ports[b],
                   "poll_interval_s": 1, "devices": devices(b)} for b in range(buses)],
    }))
    return sim_config, store_config, ports, http_port


def port_open(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.3).close()
        return True
    except OSError:
        return False


def read_to_receipt(batches: list[dict[str, Any]],
                    history: dict[str, list[float]]) -> tuple[list[float], list[float], int]:
    """Per value: (receipt - read_at, taken_at - read_at) with its device's latest read_at not after
    the batch's taken_at; and how many values had no recorded read."""
    total: list[float] = []
    age: list[float] = []
    unmatched = 0
    for batch in batches:
        for device in batch["devices"]:
            reads = history.get(device, [])
            i = bisect.bisect_right(reads, batch["taken_at"])
            if i == 0:
                unmatched += 1
                continue
            read_at = reads[i - 1]
            total.append(batch["received"] - read_at)
            age.append(batch["taken_at"] - read_at)
    return total, age, unmatched


def run(workdir: Path, buses: int, units: int, warmup: float, seconds: float, age_seconds: float) -> dict[str, Any]:
    from tests.support.services import MosquittoProcess

    mosquitto = MosquittoProcess(workdir / "mosquitto")
    mosquitto.start()
    procs = ProcessGroup(workdir / "logs")
    subscriber: Subscriber | None = None
    try:
        sim_config, store_config, ports, http_port = write_configs(workdir, mosquitto.port, buses, units)
        base = f"http://127.0.0.1:{http_port}"
        print(f"    starting Mosquitto, the simulator ({buses} TCP endpoints x {units} units) and the store",
              flush=True)
        sim = procs.start("sim", "--log-level", "WARNING", "simulate", "--config", str(sim_config))
        wait_until(lambda: sim.poll() is None and all(port_open(p) for p in ports), 30, "the simulator")
        subscriber = Subscriber(mosquitto.port)
        subscriber.start()
        store = procs.start("store", "--log-level", "WARNING", "store", "--config", str(store_config))

        def store_ready() -> bool:
            if store.poll() is not None:
                raise RuntimeError(f"the store exited:\n{procs.tail('store')}")
            return httpx.get(f"{base}/healthz", timeout=1).status_code == 200

        wait_until(store_ready, 30, "the store")
        print(f"    warming up {warmup:.0f} s", flush=True)
        time.sleep(warmup)
        with httpx.Client(timeout=5) as http:
            m0 = parse_metrics(http.get(f"{base}/metrics").text)
            t0, store_cpu0, sim_cpu0 = time.time(), cpu_seconds(store.pid), cpu_seconds(sim.pid)
            store_times0 = cpu_times(store.pid)
            broker_cpu0 = cpu_seconds(mosquitto.proc.pid) if mosquitto.proc else 0.0
            print(f"    measuring {seconds:.0f} s (store pid {store.pid})", flush=True)
            next_progress = t0 + 15
            while time.time() < t0 + seconds:
                time.sleep(0.5)
                if time.time() >= next_progress and time.time() < t0 + seconds:
                    got = subscriber.between(t0, time.time())
                    print(f"      {time.time() - t0:4.0f} s: {len(got)} batches, {sum(b['values'] for b in got)} values, "
                          f"store CPU {1000 * (cpu_seconds(store.pid) - store_cpu0):.0f} ms", flush=True)
                    next_progress += 15
            t1, store_cpu1, sim_cpu1 = time.time(), cpu_seconds(store.pid), cpu_seconds(sim.pid)
            store_times1 = cpu_times(store.pid)
            broker_cpu1 = cpu_seconds(mosquitto.proc.pid) if mosquitto.proc else 0.0
            rss = rss_mib(store.pid)
            m1 = parse_metrics(http.get(f"{base}/metrics").text)
            window = subscriber.between(t0, t1)

            print(f"    read ages: polling /api/state every 0.2 s for {age_seconds:.0f} s (outside the CPU window)",
                  flush=True)
            history: dict[str, set[float]] = {}
            a0 = time.time()
            while time.time() < a0 + age_seconds + 1.5:
                for device in http.get(f"{base}/api/state").json()["devices"]:
                    if device.get("read_at"):
                        history.setdefault(device["id"], set()).add(
                            datetime.fromisoformat(device["read_at"]).timestamp())
                time.sleep(0.2)
            # batches received while the history covers them (first 1.5 s: reads from before it began)
            age_batches = subscriber.between(a0 + 1.5, a0 + age_seconds + 1.5)
    finally:
        if subscriber:
            subscriber.stop()
        procs.stop_all()
        mosquitto.kill()

    values = sum(b["values"] for b in window)
    points = sum(b["points"] for b in window)
    elapsed = t1 - t0
    store_cpu = store_cpu1 - store_cpu0
    b0, b1 = bus_metrics(m0), bus_metrics(m1)
    per_bus = {name: {"cycles": b1[name].get("cycles_total", 0) - b0.get(name, {}).get("cycles_total", 0),
                      "overruns": b1[name].get("overruns_total", 0) - b0.get(name, {}).get("overruns_total", 0),
                      "overruns_since_start": b1[name].get("overruns_total", 0),
                      "last_cycle_ms": 1000 * b1[name].get("last_cycle_s", float("nan"))}
               for name in sorted(b1)}

    def delta(name: str) -> float:
        return metric_sum(m1, name) - metric_sum(m0, name)

    read_total, read_age, unmatched = read_to_receipt(age_batches, {d: sorted(r) for d, r in history.items()})
    by_bus: dict[str, list[float]] = {}
    for batch in window:
        by_bus.setdefault(batch["bus"], []).append(batch["taken_at"])
    periods = [b - a for taken in by_bus.values() for a, b in zip(taken, taken[1:])]
    devices = buses * units
    return {
        "devices": devices, "registers_per_device": REGISTERS, "buses": buses, "units_per_bus": units,
        "poll_interval_s": 1, "telemetry_interval_s": 1,
        "window_s": elapsed, "batches": len(window),
        "telemetry_period_s": statistics.fmean(periods) if periods else None,  # per bus
        "batches_per_bus": {bus: len(taken) for bus, taken in sorted(by_bus.items())},
        "poll_cycles_per_s": statistics.fmean(b["cycles"] for b in per_bus.values()) / elapsed if per_bus else None, "points_delivered": points, "values_delivered": values,
        "values_per_s": values / elapsed, "expected_values_per_s": devices * REGISTERS,
        "store_cpu_s": store_cpu, "store_cpu_ms_per_1000_values": 1000 * store_cpu / values * 1000 if values else None,
        "store_cpu_percent": 100 * store_cpu / elapsed,
        "store_cpu_user_s": store_times1[0] - store_times0[0], "store_cpu_system_s": store_times1[1] - store_times0[1],
        "simulator_cpu_ms_per_1000_values": 1000 * (sim_cpu1 - sim_cpu0) / values * 1000 if values else None,
        "simulator_cpu_percent": 100 * (sim_cpu1 - sim_cpu0) / elapsed,
        "broker_cpu_percent": 100 * (broker_cpu1 - broker_cpu0) / elapsed,
        "store_rss_mib": rss,
        "batch_to_subscriber": percentiles([b["received"] - b["taken_at"] for b in window]),
        "read_to_subscriber": percentiles(read_total),
        "value_age_at_batch": percentiles(read_age),
        "read_window_batches": len(age_batches), "read_window_unmatched_values": unmatched,
        "buses_detail": per_bus,
        "overruns": sum(b["overruns"] for b in per_bus.values()),
        "failed_polls": delta("storeguard_edge_device_failed_polls_total"),
        "polls": delta("storeguard_edge_device_polls_total"),
        "request_timeouts": delta("storeguard_edge_device_requests_timeouts_total"),
    }


def report(r: dict[str, Any]) -> None:
    cpu = r["store_cpu_ms_per_1000_values"]
    print(f"\n  {r['devices']} devices x {r['registers_per_device']} registers on {r['buses']} Modbus TCP endpoints, "
          f"polled and published every 1 s; {r['window_s']:.0f} s window")
    print(f"  delivered: {r['batches']} batches ({len(r['batches_per_bus'])} buses), {r['values_delivered']} values "
          f"({r['values_per_s']:.0f}/s of {r['expected_values_per_s']}/s expected)")
    print(f"  telemetry period {r['telemetry_period_s']:.3f} s per bus, poll cycles {r['poll_cycles_per_s']:.3f}/s per bus")
    print(f"  polls {r['polls']:.0f}, failed {r['failed_polls']:.0f}, timeouts {r['request_timeouts']:.0f}, "
          f"cycle overruns {r['overruns']:.0f}")
    print(f"  {'measure':40} {'value':>12}")
    print(f"  {'store CPU per 1,000 values':40} {cpu:>9.1f} ms" if cpu is not None else "  no values delivered")
    print(f"  {'store CPU (share of one core)':40} {r['store_cpu_percent']:>10.1f} %")
    print(f"  {'  user / system':40} {r['store_cpu_user_s']:>5.2f} / {r['store_cpu_system_s']:.2f} s")
    print(f"  {'store RSS at the end':40} {r['store_rss_mib']:>8.1f} MiB")
    print(f"  {'simulator CPU (not StoreGuard)':40} {r['simulator_cpu_percent']:>10.1f} %")
    print(f"  {'broker CPU (Mosquitto)':40} {r['broker_cpu_percent']:>10.1f} %")
    print(f"\n  {'latency':40} {'n':>7} {'p50 ms':>8} {'p95 ms':>8} {'max ms':>8}")
    for key, label in [("batch_to_subscriber", "batch taken_at -> subscriber"),
                       ("read_to_subscriber", "device read -> subscriber (per value)"),
                       ("value_age_at_batch", "  of which: read -> batch taken_at")]:
        row = r[key]
        if "p50_ms" in row:
            print(f"  {label:40} {row['n']:>7} {row['p50_ms']:>8.1f} {row['p95_ms']:>8.1f} {row['max_ms']:>8.1f}")
    print("\n  bus        cycles  overruns (window / since start)  last cycle")
    for name, b in r["buses_detail"].items():
        print(f"  {name:10} {b['cycles']:>6.0f}  {b['overruns']:>8.0f} / {b['overruns_since_start']:<6.0f}"
              f"               {b['last_cycle_ms']:>6.1f} ms")
    if cpu is not None:
        print("\n  against ThingsBoard IoT Gateway 3.8.5 (issue 4's reference, not measured here):")
        for label, (low, high) in TB_CPU_MS_PER_1000.items():
            print(f"    {label:26} {low:.0f}-{high:.0f} ms per 1,000 values: StoreGuard uses "
                  f"1/{low / cpu:.1f} to 1/{high / cpu:.1f} of it")
        p50 = r["batch_to_subscriber"].get("p50_ms")
        if p50:
            print(f"    read-to-MQTT p50 ~{TB_READ_TO_MQTT_P50_MS:.0f} ms; StoreGuard batch -> subscriber p50 "
                  f"{p50:.1f} ms, device read -> subscriber p50 {r['read_to_subscriber'].get('p50_ms', float('nan')):.0f} ms")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=60.0, help="the CPU window")
    parser.add_argument("--warmup", type=float, default=10.0)
    parser.add_argument("--age-seconds", type=float, default=60.0, help="the read -> subscriber window")
    parser.add_argument("--buses", type=int, default=4)
    parser.add_argument("--units-per-bus", type=int, default=50)
    parser.add_argument("--out", type=Path, default=Path("var/bench"))
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="sg-edge-cpu-") as tmp:
        result = run(Path(tmp), args.buses, args.units_per_bus, args.warmup, args.seconds, args.age_seconds)
    report(result)
    machine = {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "edge_cpu.json").write_text(json.dumps({"machine": machine, "result": result}, indent=2))
    print(f"\n  results in {args.out / 'edge_cpu.json'}")
    complete = result["values_delivered"] >= 0.95 * result["expected_values_per_s"] * result["window_s"]
    return 0 if complete and result["overruns"] == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
