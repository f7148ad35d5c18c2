"""Telemetry ingest into PostgreSQL: batched (COPY) against single-row INSERTs of the same data.

A private PostgreSQL cluster (initdb in a temp dir, a free port) with durable settings
(fsync and synchronous_commit on, as in production; the test suites' cluster turns them
off). The data: 200 stores x 30 refrigeration controllers (carel-ir33-wbref) x 10 points
per round, one telemetry batch (300 points, a bus after one poll cycle) per store, each
batch its own transaction as ingest commits it. Per round, the same batches go:

- batched:    `central.telemetry.service.store_samples`, ingest's path: one COPY per batch,
- single-row: `insert_samples_one_by_one`, one INSERT statement per sample (the peer),
- full ingest: `Ingestor.process(topic, payload)` per batch, everything central does with a
  batch on one worker: parse, ledger row, devices, latest values, samples (COPY) and the
  HACCP log upsert (`--no-ingest` leaves it out).

Each into its own fresh database of the same cluster, so neither sees the other's rows, by
`--workers` threads (default 2, like the two central workers of issue 5's benchmarks), each
with its own connection and its share of the stores.

Run: .venv/bin/python -m benchmarks.telemetry_ingest [--rounds 3] [--stores 200] [--workers 2]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session

from central.clock import FakeClock
from central.db import Database, migrate
from central.ingest.processor import Ingestor
from central.metrics import Metrics
from central.telemetry import service as telemetry
from device_profiles import ProfileRegistry
from protocols.mqtt.messages import DeviceHealth, StoreHealth, TelemetryBatch, TelemetryPoint
from protocols.mqtt.topics import TopicKind, topic
from tests.support.services import PostgresCluster

T0 = datetime(2026, 1, 5, 8, 0, tzinfo=UTC)
MODEL = "carel-ir33-wbref"
GOAL_ROWS_S = 50_000


def _points(profiles: ProfileRegistry) -> list[str]:
    profile = profiles.modbus(MODEL)
    return [p.name for p in profile.points[:10]]


def make_round(profiles: ProfileRegistry, stores: int, devices: int, round_no: int) -> list[TelemetryBatch]:
    """One poll cycle of every store: one batch per store, `devices` x 10 points."""
    profile = profiles.modbus(MODEL)
    names = _points(profiles)
    is_bool = {p.name: p.is_bool for p in profile.points}
    taken_at = T0 + timedelta(minutes=round_no)
    batches = []
    for s in range(stores):
        points = []
        for d in range(devices):
            for i, name in enumerate(names):
                value: float | bool = ((s + d + round_no) % 7 == 0) if is_bool[name] else \
                    round(2.0 + ((s * 31 + d * 7 + i + round_no) % 60) / 10, 1)
                points.append(TelemetryPoint(device_id=f"case-{d:02d}", point=name, value=value,
                                             unit=profile.point(name).unit))
        batches.append(TelemetryBatch(store_id=f"store-{s:04d}", seq=round_no + 1, taken_at=taken_at, points=points))
    return batches


def health(stores: int, devices: int) -> list[StoreHealth]:
    return [StoreHealth(store_id=f"store-{s:04d}", online=True, sent_at=T0, name=f"Store {s}",
                        devices=[DeviceHealth(device_id=f"case-{d:02d}", device_model=MODEL, online=True,
                                              location=f"Aisle {d}") for d in range(devices)])
            for s in range(stores)]


Writer = Callable[..., int]


def _in_workers(workers: int, batches: list[TelemetryBatch], work: Callable[[list[TelemetryBatch]], int]) -> tuple[int, float]:
    """Rows written and wall-clock seconds, the stores split between `workers` threads (each
    its own connection, as central workers each have theirs)."""
    shares = [batches[w::workers] for w in range(workers)]
    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=workers) as pool:
        rows = sum(pool.map(work, shares))
    return rows, time.perf_counter() - started


def timed_inserts(database: Database, batches: list[TelemetryBatch], write: Writer, workers: int) -> tuple[int, float]:
    """One transaction per batch, as ingest commits each message."""
    def work(share: list[TelemetryBatch]) -> int:
        rows = 0
        for batch in share:
            with Session(database.engine) as session, session.begin():
                rows += write(session=session, store_id=batch.store_id, taken_at=batch.taken_at, points=batch.points)
        return rows

    return _in_workers(workers, batches, work)


def timed_ingest(ingestor: Ingestor, batches: list[TelemetryBatch], workers: int) -> tuple[int, float]:
    payloads = {id(b): (topic(b.store_id, TopicKind.TELEMETRY), b.to_bytes()) for b in batches}

    def work(share: list[TelemetryBatch]) -> int:
        for batch in share:
            ingestor.process(*payloads[id(batch)])
        return sum(len(b.points) for b in share)

    return _in_workers(workers, batches, work)


def machine() -> dict[str, Any]:
    cpu = "unknown"
    try:
        cpu = next(line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                   if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return {"nproc": os.cpu_count(), "cpu": cpu, "python": platform.python_version(), "platform": platform.platform()}


def _pg_version(cluster: PostgresCluster) -> str:
    out = subprocess.run([str(cluster.bin / "postgres"), "--version"], capture_output=True, text=True, check=False)
    return out.stdout.strip()


def run(rounds: int, stores: int, devices: int, ingest: bool, workers: int) -> dict[str, Any]:
    profiles = ProfileRegistry.load()
    cluster = PostgresCluster(durable=True)
    print(f"  starting a private PostgreSQL ({_pg_version(cluster)}, fsync on) on port {cluster.port}", flush=True)
    cluster.start()
    databases: dict[str, Database] = {}
    try:
        for name in ("batched", "single_row") + (("ingest",) if ingest else ()):
            url = cluster.create_database(prefix=f"bench_{name}")
            migrate(url)
            databases[name] = Database(url)
        ingestor = None
        if ingest:
            ingestor = Ingestor(database=databases["ingest"], profiles=profiles, metrics=Metrics(),
                                clock=FakeClock(T0 + timedelta(days=1)))
            for message in health(stores, devices):
                ingestor.process(topic(message.store_id, TopicKind.HEALTH), message.to_bytes())
        totals: dict[str, list[float]] = {name: [0, 0.0] for name in databases}
        for r in range(rounds):
            batches = make_round(profiles, stores, devices, r)
            figures = {
                "batched": timed_inserts(databases["batched"], batches, telemetry.store_samples, workers),
                "single_row": timed_inserts(databases["single_row"], batches, telemetry.insert_samples_one_by_one,
                                            workers),
            }
            if ingestor is not None:
                figures["ingest"] = timed_ingest(ingestor, batches, workers)
            for name, (rows, seconds) in figures.items():
                totals[name][0] += rows
                totals[name][1] += seconds
            print(f"  round {r + 1}/{rounds}: " + ", ".join(
                f"{name} {rows / seconds:,.0f} rows/s" for name, (rows, seconds) in figures.items()), flush=True)
        counts = {}
        for name, database in databases.items():
            with database.session() as session:
                counts[name] = telemetry.sample_count(session=session)
    finally:
        for database in databases.values():
            database.dispose()
        cluster.cleanup()
    results = {name: {"rows": int(rows), "seconds": round(seconds, 3), "rows_per_s": round(rows / seconds)}
               for name, (rows, seconds) in totals.items()}
    for name, count in counts.items():
        if count != results[name]["rows"]:
            raise RuntimeError(f"{name}: {count} rows stored, {results[name]['rows']} written")
    return {"rounds": rounds, "workers": workers, "stores": stores, "devices_per_store": devices, "points_per_device": 10,
            "batch_points": devices * 10, "results": results,
            "ratio_batched_to_single_row": round(results["batched"]["rows_per_s"] / results["single_row"]["rows_per_s"], 1),
            "postgres": _pg_version(cluster), "durable": True}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3, help="poll cycles of every store (default 3)")
    parser.add_argument("--stores", type=int, default=200)
    parser.add_argument("--devices", type=int, default=30, help="controllers per store (x 10 points)")
    parser.add_argument("--workers", type=int, default=2, help="concurrent writers, each its own connection, like "
                        "central workers (default 2, as issue 5's benchmarks run two central workers)")
    parser.add_argument("--no-ingest", action="store_true", help="skip the full-ingest measurement")
    parser.add_argument("--out", type=Path, default=Path("var/bench"))
    args = parser.parse_args(argv)
    print(f"  {args.stores} stores x {args.devices} devices x 10 points, {args.rounds} rounds, "
          f"{args.workers} worker(s)", flush=True)
    result = run(args.rounds, args.stores, args.devices, not args.no_ingest, args.workers)
    result["machine"] = machine()
    labels = {"batched": "batched (COPY per batch)", "single_row": "single-row INSERTs",
              "ingest": "full ingest (parse+ledger+latest+COPY+HACCP)"}
    print(f"\n  {'path':46} {'rows':>9} {'s':>8} {'rows/s':>10}")
    for name, row in result["results"].items():
        print(f"  {labels[name]:46} {row['rows']:>9} {row['seconds']:>8.2f} {row['rows_per_s']:>10,}")
    print(f"  batched / single-row: {result['ratio_batched_to_single_row']}x; goal >= {GOAL_ROWS_S:,} rows/s batched")
    args.out.mkdir(parents=True, exist_ok=True)
    out = args.out / f"telemetry_ingest-{args.workers}w.json"
    out.write_text(json.dumps(result, indent=2))
    print(f"\n  results in {out}")
    return 0 if result["results"]["batched"]["rows_per_s"] >= GOAL_ROWS_S else 1


if __name__ == "__main__":
    raise SystemExit(main())
