"""`make bench`: run every benchmark in turn; figures go to var/bench/ and BENCHMARKS.md."""

from __future__ import annotations

import sys

from benchmarks import bus_efficiency, loop_latency


def main() -> int:
    print("==> benchmark 1/2: fault -> ticket -> store latency (real processes)", flush=True)
    failed = loop_latency.main([])
    print("==> benchmark 2/2: RS-485 bus efficiency against the physical limit", flush=True)
    failed |= bus_efficiency.main([])
    return failed


if __name__ == "__main__":
    sys.exit(main())
