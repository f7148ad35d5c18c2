"""`make bench`: run every benchmark in turn."""

from __future__ import annotations

import sys

from benchmarks import loop_latency


def main() -> int:
    print("==> benchmark 1/1: fault -> ticket -> store latency (real processes)", flush=True)
    return loop_latency.main(sys.argv[1:])


if __name__ == "__main__":
    sys.exit(main())
