"""`make bench`: run every benchmark in turn; figures go to var/bench/ and BENCHMARKS.md."""

from __future__ import annotations

import sys

from benchmarks import bus_efficiency, edge_cpu, loop_latency, offline

BENCHMARKS = [
    ("fault -> ticket -> store latency (real processes)", loop_latency.main),
    ("RS-485 bus efficiency against the physical limit", bus_efficiency.main),
    ("an hour-equivalent offline, then reconnect", offline.main),
    ("edge CPU: 200 Modbus TCP devices x 10 registers every second", edge_cpu.main),
]


def main() -> int:
    failed = 0
    for number, (title, run) in enumerate(BENCHMARKS, 1):
        print(f"==> benchmark {number}/{len(BENCHMARKS)}: {title}", flush=True)
        failed |= run([])
    return failed


if __name__ == "__main__":
    sys.exit(main())
