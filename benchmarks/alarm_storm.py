"""Central: alarm storm with a worker killed mid-way (issue 5, benchmark 2).

A private Mosquitto and PostgreSQL (fsync on) and two `storeguard central` workers sharing
one `$share` group (`benchmarks.central_cluster`). 1,000 simulated stores publish
contract-v1 FaultEvents at QoS 1, 200 events/s in total, for `--duration` seconds (the
figure in BENCHMARKS.md is the full 5 minutes). The stores are multiplexed: 50 MQTT
connections, each publishing for 20 stores (the broker has no per-store ACL here; each
store still has its own topic, `seq` counter and devices).

Every second's events are, in a fixed shuffled pattern:
- 45 % raises of a new fault (a new device of a store): each must become exactly one ticket;
- 45 % clears of a fault raised at least 5 s before (each fault is cleared at most once);
- 5 % repeats: the same active fault raised again (a new message_id);
- 5 % redeliveries: an earlier message published again byte for byte (same message_id).

Half-way through, worker 1 is killed with SIGKILL and restarted at once (same MQTT client id,
so the broker hands it its session's queued and unacknowledged messages). The run then waits
until every stored message is applied and reports tickets expected vs created, duplicates,
lost faults, and the lag from each event's occurred_at to its ticket (created_at: when a worker
claimed the raise) and to its inbox row (received_at: stored and acknowledged).

Run: python -m benchmarks.alarm_storm [--duration 300] [--rate 200] [--stores 1000]
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from benchmarks.central_cluster import CentralCluster, close_clients, mqtt_client
from benchmarks.central_faults import OUT, fault_event, machine, percentiles
from protocols.mqtt.topics import TopicKind, topic

CONNECTIONS = 50
# one ticket per fault event sent: not the store tasks a repair spawns, nor central's own incidents
DEVICE_TICKETS = " AND link IS DISTINCT FROM 'task' AND device_id <> 'store'"
CLEAR_AFTER_S = 5.0
PATTERN = ["raise"] * 9 + ["clear"] * 9 + ["repeat", "redeliver"]  # per 20 events: 45 / 45 / 5 / 5 %


@dataclass
class Storm:
    """The events published so far and what they must lead to."""

    stores: list[str]
    rng: random.Random = field(default_factory=lambda: random.Random(5))
    seq: dict[str, int] = field(default_factory=dict)
    devices: dict[str, int] = field(default_factory=dict)
    raised_at: dict[tuple[str, str], float] = field(default_factory=dict)  # fault -> occurred_at of its first raise
    active: deque[tuple[float, str, str]] = field(default_factory=deque)  # (raised at, store, device), oldest first
    repeats_left: dict[tuple[str, str], int] = field(default_factory=dict)
    occurred: dict[str, float] = field(default_factory=dict)  # message_id -> occurred_at
    recent: deque[tuple[str, bytes]] = field(default_factory=lambda: deque(maxlen=2000))
    counts: dict[str, int] = field(default_factory=lambda: {k: 0 for k in ("raise", "clear", "repeat", "redeliver")})
    cleared: set[tuple[str, str]] = field(default_factory=set)

    def next_event(self, kind: str, now: float) -> tuple[str, bytes, str]:
        """(store, payload, kind actually published): a clear or repeat with nothing to act on raises."""
        if kind == "redeliver" and self.recent:
            store, payload = self.recent[self.rng.randrange(len(self.recent))]
            self.counts["redeliver"] += 1
            return store, payload, "redeliver"
        if kind == "clear" and self.active and now - self.active[0][0] >= CLEAR_AFTER_S:
            _at, store, device = self.active.popleft()
            self.cleared.add((store, device))
            return self._publishable(store, device, "cleared", now, "clear")
        if kind == "repeat" and self.active:
            _at, store, device = self.active[self.rng.randrange(len(self.active))]
            return self._publishable(store, device, "raised", now, "repeat")
        store = self.stores[self.rng.randrange(len(self.stores))]
        self.devices[store] = self.devices.get(store, 0) + 1
        device = f"case-{self.devices[store]:04d}"
        self.raised_at[(store, device)] = now
        self.active.append((now, store, device))
        return self._publishable(store, device, "raised", now, "raise")

    def _publishable(self, store: str, device: str, state: str, now: float, kind: str) -> tuple[str, bytes, str]:
        self.seq[store] = self.seq.get(store, 0) + 1
        event = fault_event(store, device, self.seq[store], state, datetime.fromtimestamp(now, UTC))
        payload = event.to_bytes()
        self.occurred[event.message_id] = now
        self.recent.append((store, payload))
        self.counts[kind] += 1
        return store, payload, kind


def _progress(cluster: CentralCluster, started: float, storm: Storm, note: str = "") -> None:
    stored = cluster.scalar("SELECT count(*) FROM inbound_messages")
    pending = cluster.scalar("SELECT count(*) FROM inbound_messages WHERE state = 'pending'")
    tickets = cluster.scalar("SELECT count(*) FROM tickets WHERE true" + DEVICE_TICKETS)
    print(f"  {time.monotonic() - started:6.0f} s  published {sum(storm.counts.values())}  stored {stored}  "
          f"pending {pending}  tickets {tickets}/{len(storm.raised_at)} {note}", flush=True)


def run(*, stores: int, rate: float, duration: float, workdir: Path) -> dict[str, Any]:
    names = [f"storm-{i:04d}" for i in range(stores)]
    storm = Storm(names)
    with CentralCluster(workdir) as cluster:
        print(f"  two central workers up (ports {cluster.ports}); {CONNECTIONS} connections for {stores} stores",
              flush=True)
        clients = [mqtt_client(f"storm-gw-{i:02d}", cluster.broker.port, max_inflight=1000)
                   for i in range(CONNECTIONS)]
        killed_at = restarted_in = None
        try:
            started = time.monotonic()
            last_report = started
            total = int(rate * duration)
            pattern = PATTERN * 10
            for k in range(total):
                if k % len(pattern) == 0:
                    storm.rng.shuffle(pattern)
                store, payload, _kind = storm.next_event(pattern[k % len(pattern)], time.time())
                clients[names.index(store) % CONNECTIONS].publish(topic(store, TopicKind.FAULT), payload, qos=1)
                if killed_at is None and k >= total // 2:
                    killed_at = time.monotonic() - started
                    cluster.kill_worker(1)
                    t_kill = time.monotonic()
                    cluster.start_worker(1, wait=False)
                    _progress(cluster, started, storm, "(worker 1 killed, restarting)")
                if killed_at is not None and restarted_in is None and k % 50 == 0:
                    try:
                        cluster.wait_healthy(1, timeout=0.01)
                        restarted_in = time.monotonic() - t_kill
                        _progress(cluster, started, storm, f"(worker 1 back after {restarted_in:.1f} s)")
                    except RuntimeError:
                        pass
                if time.monotonic() - last_report >= 10:
                    last_report = time.monotonic()
                    _progress(cluster, started, storm)
                delay = started + (k + 1) / rate - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
            published_in = time.monotonic() - started
            print(f"  storm over after {published_in:.0f} s: {storm.counts}; draining", flush=True)
            if restarted_in is None:
                cluster.wait_healthy(1)
                restarted_in = time.monotonic() - t_kill
            distinct = len(storm.occurred)
            drain_deadline = time.monotonic() + 3600
            while time.monotonic() < drain_deadline:
                stored = cluster.scalar("SELECT count(*) FROM inbound_messages")
                pending = cluster.scalar("SELECT count(*) FROM inbound_messages WHERE state = 'pending'")
                if stored >= distinct and pending == 0:
                    break
                if time.monotonic() - last_report >= 10:
                    last_report = time.monotonic()
                    _progress(cluster, started, storm)
                time.sleep(1)
            drained_in = time.monotonic() - started
            result = _measure(cluster, storm)
        finally:
            close_clients(clients)
    result.update({
        "stores": stores, "connections": CONNECTIONS, "rate_per_s": rate, "duration_s": duration,
        "published_in_s": round(published_in, 1), "published": dict(storm.counts),
        "worker_killed_at_s": round(killed_at or 0, 1), "worker_back_after_s": round(restarted_in or 0, 1),
        "all_applied_after_s": round(drained_in, 1), "postgresql": "fsync on, synchronous_commit on",
        "machine": machine(),
    })
    return result


def _measure(cluster: CentralCluster, storm: Storm) -> dict[str, Any]:
    tickets = cluster.rows("SELECT store_id, device_id, created_at, fault_active FROM tickets "
                           "WHERE store_id LIKE 'storm-%'"
                           + DEVICE_TICKETS)
    per_fault: dict[tuple[str, str], list[Any]] = {}
    for row in tickets:
        per_fault.setdefault((row.store_id, row.device_id), []).append(row)
    expected = set(storm.raised_at)
    lost = expected - set(per_fault)
    duplicates = {key: len(rows) for key, rows in per_fault.items() if len(rows) > 1}
    wrong_state = [key for key, rows in per_fault.items() if rows[0].fault_active is (key in storm.cleared)]
    to_ticket = [min(r.created_at.timestamp() for r in rows) - storm.raised_at[key]
                 for key, rows in per_fault.items() if key in storm.raised_at]
    inbound = cluster.rows("SELECT message_id, received_at, processed_at, state, outcome FROM inbound_messages")
    to_stored = [r.received_at.timestamp() - storm.occurred[r.message_id] for r in inbound
                 if r.message_id in storm.occurred]
    to_applied = [r.processed_at.timestamp() - storm.occurred[r.message_id] for r in inbound
                  if r.message_id in storm.occurred and r.processed_at is not None]
    return {
        "distinct_messages": len(storm.occurred), "stored_messages": len(inbound),
        "unapplied_messages": sum(1 for r in inbound if r.state != "processed"),
        "dead_lettered_messages": sum(1 for r in inbound if r.outcome == "dead_lettered"),
        "tickets_expected": len(expected), "tickets_created": len(tickets), "faults_with_duplicate_tickets":
            len(duplicates), "faults_lost": len(lost), "faults_with_wrong_active_state": len(wrong_state),
        "event_to_stored": percentiles(to_stored), "event_to_applied": percentiles(to_applied),
        "raise_to_ticket": percentiles(to_ticket),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--stores", type=int, default=1000)
    parser.add_argument("--rate", type=float, default=200.0, help="fault events per second, all stores together")
    parser.add_argument("--duration", type=float, default=300.0, help="seconds of storm (BENCHMARKS.md: 300)")
    args = parser.parse_args(argv)
    print(f"central alarm storm: {args.rate:g} fault events/s for {args.duration:g} s from {args.stores} stores, "
          "two workers (one killed half-way), Mosquitto + PostgreSQL", flush=True)
    result = run(stores=args.stores, rate=args.rate, duration=args.duration, workdir=OUT / "alarm_storm")
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / f"alarm_storm_{args.duration:g}s.json").write_text(json.dumps(result, indent=2))
    print(f"  tickets expected {result['tickets_expected']}, created {result['tickets_created']}, faults with a "
          f"duplicate {result['faults_with_duplicate_tickets']}, lost {result['faults_lost']}, wrong active state "
          f"{result['faults_with_wrong_active_state']}")
    print(f"  messages: {result['distinct_messages']} distinct, {result['stored_messages']} stored, "
          f"{result['unapplied_messages']} unapplied, {result['dead_lettered_messages']} dead-lettered")
    for name in ("event_to_stored", "event_to_applied", "raise_to_ticket"):
        f = result[name]
        print(f"  {name}: n={f['n']} p50 {f['p50_ms'] / 1000:.2f} s  p99 {f['p99_ms'] / 1000:.2f} s  "
              f"max {f['max_ms'] / 1000:.2f} s")
    ok = (result["tickets_created"] == result["tickets_expected"] and result["faults_lost"] == 0
          and result["faults_with_duplicate_tickets"] == 0 and result["unapplied_messages"] == 0)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
