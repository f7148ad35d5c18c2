"""`make bench`: run every benchmark in turn; figures go to var/bench/ and BENCHMARKS.md."""

from __future__ import annotations

import sys

from benchmarks import alarm_storm, central_faults, bus_efficiency, edge_cpu, loop_latency, offline
from benchmarks import timers as timer_pass
from benchmarks import telemetry_ingest

BENCHMARKS = [
    ("central: fault -> ticket, two workers on PostgreSQL, 100 stores", central_faults.main),
    ("central: alarm storm, 200 events/s for 5 min from 1,000 stores, a worker killed", alarm_storm.main),
    ("fault -> ticket -> store latency (real processes)", loop_latency.main),
    ("RS-485 bus efficiency against the physical limit", bus_efficiency.main),
    ("an hour-equivalent offline, then reconnect", offline.main),
    ("edge CPU: 200 Modbus TCP devices x 10 registers every second", edge_cpu.main),
    ("central: timer pass with 100,000 open tickets (PostgreSQL)", timer_pass.main),
    ("central: telemetry ingest into PostgreSQL, batched vs single-row", telemetry_ingest.main),
]


def main() -> int:
    failed = 0
    for number, (title, run) in enumerate(BENCHMARKS, 1):
        print(f"==> benchmark {number}/{len(BENCHMARKS)}: {title}", flush=True)
        failed |= run([])
    return failed


if __name__ == "__main__":
    sys.exit(main())
