"""The device profile the benchmarks poll: ten contiguous holding registers, one read each."""

from __future__ import annotations

from pathlib import Path

import yaml

REGISTERS = 10
MODEL = "bench-10reg"


def write_bench_profile(directory: Path, *, timeout_ms: int) -> Path:
    """Write the profile into `directory` (a profiles dir for the simulator and the edge)."""
    directory.mkdir(parents=True, exist_ok=True)
    profile = {
        "model": MODEL,
        "manufacturer": "StoreGuard benchmark",
        "kind": "refrigeration_controller",
        "provenance": "benchmark: ten contiguous holding registers, read in one request",
        "modbus": {"timeout_ms": timeout_ms, "max_registers_per_read": REGISTERS, "max_gap": 0},
        "points": [{"name": f"r{i}", "table": "holding", "address": i, "type": "int16", "scale": 0.1,
                    "provenance": "benchmark"} for i in range(REGISTERS)],
        "rules": [],
    }
    path = directory / f"{MODEL}.yaml"
    path.write_text(yaml.safe_dump(profile))
    return path
