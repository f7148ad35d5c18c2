"""Timer pass with 100,000 open tickets: the SLA timer loop's cost on PostgreSQL.

A private PostgreSQL cluster (initdb in a temp dir, a free port, fsync and synchronous_commit
on, as in production). Loaded in bulk with COPY (not through the API): 100 stores x 1,000
refrigerated cases, one open, accepted food-safety repair (priority 2, 24/7 policy) per case
with its trail (created, assigned, accepted) and its pending SLA timers, as the SLA hook
plans them: arrival and resolution warnings at 50/75% and breaches (about 600,000 timers).
For `--due` of the tickets (default 1,000) the arrival target is already breached: their
breach timer is due, their earlier warnings are recorded as fired.

Measured, with central's own `run_pass` and timer registry (the real SLA handlers):
- (a) a pass with nothing due (the claim query finds nothing), the median of 20,
- (b) a pass with `--due` timers due: each handler locks its ticket, recomputes the SLA from
  the trail, records the level-1 escalation and plans the next level; then it is checked
  that every due ticket got exactly one ESCALATED event,
- the EXPLAIN (ANALYZE, BUFFERS) of the claim query, which must use ix_timers_due.

Run: .venv/bin/python -m benchmarks.timers [--tickets 100000] [--due 1000]
"""

from __future__ import annotations

import argparse
import io
import json
import multiprocessing
import os
import platform
import statistics
import subprocess
import time
from concurrent.futures import ProcessPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import func, select, text
from sqlalchemy.dialects import postgresql

from central.app import timer_registry
from central.db import Database, migrate
from central.sla.plan import BREACH_KIND, WARNING_KIND, key
from central.tickets.models import EventType, TicketEvent
from central.timers import service as timers
from central.timers.models import Timer
from tests.support.services import PostgresCluster

NOW = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)
GOAL_S = 1.0
STORES = 100
MODEL = "dixell-xr75cx"
# priority 2 food safety (24/7): arrival 240 min, resolution 480 min
ARRIVAL_MIN, RESOLUTION_MIN = 240, 480


def _iso(value: datetime) -> str:
    return value.isoformat()


def _copy(cursor: Any, table: str, columns: list[str], rows: list[tuple[Any, ...]]) -> None:
    """COPY rows (tab-separated text; values here never contain tabs, newlines or backslashes)."""
    buffer = io.StringIO()
    for row in rows:
        buffer.write("\t".join("\\N" if v is None else str(v) for v in row) + "\n")
    with cursor.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
        copy.write(buffer.getvalue())


def load(database: Database, tickets: int, due: int) -> dict[str, int]:
    """Stores, devices, a technician, tickets with their trail and their pending timers, by COPY."""
    per_store = tickets // STORES
    raw = database.engine.raw_connection()
    try:
        cursor = raw.cursor()
        cursor.execute("INSERT INTO users (username, display_name, role, password_hash, active, created_at) "
                       "VALUES ('tina', 'Tina Tech', 'technician', 'x', true, %s) RETURNING id", (NOW,))
        (user_id,) = cursor.fetchone() or (None,)
        cursor.execute("INSERT INTO technicians (user_id, skills, region, active) VALUES (%s, %s, '', true) "
                       "RETURNING id", (user_id, '["refrigeration"]'))
        (technician_id,) = cursor.fetchone() or (None,)
        _copy(cursor, "stores", ["id", "name", "online", "gateway_version", "created_at"],
              [(f"store-{s:03d}", f"Store {s}", "t", "1", _iso(NOW)) for s in range(STORES)])
        _copy(cursor, "devices", ["store_id", "device_id", "model", "location"],
              [(f"store-{s:03d}", f"case-{d:04d}", MODEL, "Aisle") for s in range(STORES) for d in range(per_store)])
        ticket_rows: list[tuple[Any, ...]] = []
        event_rows: list[tuple[Any, ...]] = []
        timer_rows: list[tuple[Any, ...]] = []
        event_id = 0
        for n in range(1, tickets + 1):
            s, d = divmod(n - 1, per_store)
            is_due = n <= due
            created = NOW - timedelta(minutes=300 if is_due else 10)
            ticket_rows.append((n, f"store-{s:03d}", f"case-{d:04d}", "high_temperature", MODEL, "Case too warm",
                                "Aisle", "repair", "food_safety", "major", 2, "accepted", "refrigeration",
                                technician_id, "t", 1, _iso(created), _iso(created), "{}", "", _iso(created),
                                _iso(created + timedelta(minutes=2)), 3, f"accepted|2|{technician_id}|food_safety"))
            trail = [("created", None, "new", created), ("assigned", "new", "assigned", created),
                     ("accepted", "assigned", "accepted", created + timedelta(minutes=2))]
            for kind, source_status, target_status, at in trail:
                event_id += 1
                event_rows.append((event_id, n, _iso(at), kind, source_status, target_status, "system", "", "{}"))
            marks = {("arrival", "warn50"): ARRIVAL_MIN / 2, ("arrival", "warn75"): ARRIVAL_MIN * 3 / 4,
                     ("arrival", "breach"): ARRIVAL_MIN, ("resolution", "warn50"): RESOLUTION_MIN / 2,
                     ("resolution", "warn75"): RESOLUTION_MIN * 3 / 4, ("resolution", "breach"): RESOLUTION_MIN}
            for (target, stage), minutes in marks.items():
                due_at = created + timedelta(minutes=minutes)
                if is_due and stage != "breach" and due_at <= NOW:  # fired already: recorded as a warning
                    event_id += 1
                    event_rows.append((event_id, n, _iso(due_at), EventType.SLA_WARNING.value, None, None, "timer",
                                       "", json.dumps({"target": target, "stage": stage})))
                    continue
                data = {"target": target, "level": 1} if stage == "breach" else {"target": target, "stage": stage}
                timer_rows.append((key(n, target, stage), BREACH_KIND if stage == "breach" else WARNING_KIND, n,
                                   _iso(due_at), json.dumps(data), _iso(created), 0))
        _copy(cursor, "tickets", [
            "id", "store_id", "device_id", "fault_code", "device_model", "title", "location", "ticket_class",
            "fault_class", "severity", "priority", "status", "required_skill", "assignee_id", "fault_active",
            "raise_count", "first_raised_at", "last_raised_at", "evidence", "resolution_note", "created_at",
            "updated_at", "version", "sla_signature"], ticket_rows)
        _copy(cursor, "ticket_events", ["id", "ticket_id", "at", "type", "from_status", "to_status", "source", "note",
                                        "data"], event_rows)
        _copy(cursor, "timers", ["key", "kind", "ticket_id", "due_at", "data", "created_at", "attempts"], timer_rows)
        cursor.execute("SELECT setval('tickets_id_seq', %s)", (tickets,))
        cursor.execute("SELECT setval('ticket_events_id_seq', %s)", (event_id,))
        raw.commit()
        for table in ("tickets", "ticket_events", "timers", "devices"):
            cursor.execute(f"ANALYZE {table}")
        raw.commit()
    finally:
        raw.close()
    return {"tickets": tickets, "events": len(event_rows), "timers": len(timer_rows)}


def claim_sql(now: datetime, limit: int = 200) -> str:
    """The claim query of `central.timers.service.claim_due`, as PostgreSQL runs it."""
    query = (select(Timer).where(Timer.failed_at.is_(None), Timer.due_at <= now)
             .order_by(Timer.due_at, Timer.id).limit(limit).with_for_update(skip_locked=True))
    return str(query.compile(dialect=postgresql.dialect(), compile_kwargs={"literal_binds": True}))


def explain(database: Database, now: datetime) -> str:
    with database.engine.connect() as connection:
        rows = connection.execute(text("EXPLAIN (ANALYZE, BUFFERS) " + claim_sql(now))).scalars().all()
        connection.rollback()
    return "\n".join(rows)


def _worker_pass(url: str, now: datetime, start_at: float) -> tuple[dict[str, int], float]:
    """One central worker (its own process and connection pool) running one pass."""
    database = Database(url)
    try:
        with database.engine.connect():
            pass  # connect before the start line
        time.sleep(max(0.0, start_at - time.time()))
        started = time.perf_counter()
        result = timers.run_pass(database=database, registry=timer_registry(), now=now)
        return result.fired, time.perf_counter() - started
    finally:
        database.dispose()


def parallel_pass(url: str, now: datetime, workers: int) -> tuple[dict[str, int], float]:
    """`workers` processes run a pass together, as several central workers would; the wall time."""
    start_at = time.time() + 2.0
    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        futures = [pool.submit(_worker_pass, url, now, start_at) for _ in range(workers)]
        results = [f.result() for f in futures]
    fired: dict[str, int] = {}
    for by_kind, _seconds in results:
        for kind, count in by_kind.items():
            fired[kind] = fired.get(kind, 0) + count
    return fired, max(seconds for _fired, seconds in results)


def run(tickets: int, due: int, workers: int) -> dict[str, Any]:
    cluster = PostgresCluster(durable=True)
    version = subprocess.run([str(cluster.bin / "postgres"), "--version"], capture_output=True, text=True,
                             check=False).stdout.strip()
    print(f"  starting a private PostgreSQL ({version}, fsync on) on port {cluster.port}", flush=True)
    cluster.start()
    try:
        url = cluster.create_database(prefix="bench_timers")
        migrate(url)
        database = Database(url)
        started = time.perf_counter()
        loaded = load(database, tickets, due)
        print(f"  loaded {loaded['tickets']:,} tickets, {loaded['events']:,} events, {loaded['timers']:,} timers "
              f"by COPY in {time.perf_counter() - started:.1f} s", flush=True)
        registry = timer_registry()
        quiet_at = NOW - timedelta(minutes=120)  # before any deadline
        idle = []
        for _ in range(20):
            t = time.perf_counter()
            result = timers.run_pass(database=database, registry=registry, now=quiet_at)
            idle.append(time.perf_counter() - t)
            assert result.fired_total == 0
        plan_idle = explain(database, quiet_at)
        plan_due = explain(database, NOW)
        if workers > 1:
            fired, busy = parallel_pass(url, NOW, workers)
            result = timers.PassResult(fired=fired)
        else:
            t = time.perf_counter()
            result = timers.run_pass(database=database, registry=registry, now=NOW)
            busy = time.perf_counter() - t
        with database.session() as session:
            escalated = session.scalar(select(func.count(func.distinct(TicketEvent.ticket_id)))
                                       .where(TicketEvent.type == EventType.ESCALATED)) or 0
            events = session.scalar(select(func.count()).select_from(TicketEvent)
                                    .where(TicketEvent.type == EventType.ESCALATED)) or 0
            pending = timers.count_pending(session=session)
        database.dispose()
        return {
            "postgres": version, "loaded": loaded, "pending_after": pending,
            "idle_pass_s": {"median": statistics.median(idle), "max": max(idle), "n": len(idle)},
            "due_pass": {"due": due, "workers": workers, "fired": result.fired, "retried": result.retried,
                         "parked": result.parked,
                         "seconds": busy, "per_timer_ms": 1000 * busy / max(result.fired_total, 1),
                         "tickets_escalated": escalated, "escalated_events": events},
            "explain_idle": plan_idle, "explain_due": plan_due,
        }
    finally:
        cluster.cleanup()


def machine() -> dict[str, Any]:
    cpu = "unknown"
    try:
        cpu = next(line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                   if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return {"nproc": os.cpu_count(), "cpu": cpu, "python": platform.python_version(), "platform": platform.platform()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tickets", type=int, default=100_000, help="open tickets (a multiple of 100)")
    parser.add_argument("--due", type=int, default=1000, help="tickets whose arrival breach is due")
    parser.add_argument("--workers", type=int, default=1,
                        help="central worker processes running the pass with timers due (default 1)")
    parser.add_argument("--out", type=Path, default=Path("var/bench"))
    args = parser.parse_args(argv)
    result = run(args.tickets, args.due, args.workers)
    result["machine"] = machine()
    idle, busy = result["idle_pass_s"], result["due_pass"]
    print(f"\n  (a) nothing due:   median {1000 * idle['median']:.1f} ms, max {1000 * idle['max']:.1f} ms "
          f"over {idle['n']} passes")
    print(f"  (b) {busy['due']} due, {busy['workers']} worker(s): {busy['seconds']:.3f} s "
          f"({busy['per_timer_ms']:.2f} ms per timer), "
          f"fired {busy['fired']}, {busy['tickets_escalated']} tickets escalated once "
          f"({busy['escalated_events']} events)")
    print("\n  claim query plan with nothing due:\n    " + result["explain_idle"].replace("\n", "\n    "))
    print("\n  claim query plan with timers due:\n    " + result["explain_due"].replace("\n", "\n    "))
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "timers.json").write_text(json.dumps(result, indent=2, default=str))
    print(f"\n  results in {args.out / 'timers.json'}")
    ok = (idle["median"] < GOAL_S and busy["seconds"] < GOAL_S and busy["tickets_escalated"] == busy["due"]
          and busy["escalated_events"] == busy["due"] and "ix_timers_due" in result["explain_due"])
    print(f"  goal: < {GOAL_S:.0f} s per pass, indexed, one escalation per due ticket: {'met' if ok else 'NOT met'}")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
