"""Bus efficiency: achieved Modbus RTU reads/s against the physical limit of the line.

A simulator process serves 30 controllers on a pseudo-terminal with wire timing on: every
answer takes the request's wire time + t3.5 + a device turnaround + the response's wire
time, and a request that starts before the line has been quiet for t3.5 is garbled (as on
a real RS-485 line). The edge polls all 30 (one 10-register read each) back to back on that
one bus. Achieved reads/s is compared with PERFORMANCE.md's limit for the same read:

    limit = 1 / (wire(8 chars) + t3.5 + turnaround + wire(25 chars) + t3.5)

Also measured with 1 of the 30 devices dead (its unit id never answers): the live devices'
reads/s against the same limit shows what the dead one costs, and so does the bus time its
probes took. ``--timeouts fixed`` runs the edge as it was before adaptive timeouts (the
profile's timeout on every request, backoff counted in poll intervals); ``both`` runs each
case both ways, back to back, for a before/after under the same machine load.

Run: python -m benchmarks.bus_efficiency [--seconds 20] [--baud 9600 19200] [--turnaround-ms 5]
     [--timeouts adaptive|fixed|both]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

from device_profiles import ProfileRegistry
from edge.config import EdgeConfig
from edge.model import DeviceSnapshot, FaultChange
from edge.runtime import Edge
from edge.scheduler import SchedulerSettings
from edge.timeouts import TimeoutSettings
from protocols.modbus.rtu import t35, wire_time
from benchmarks.profiles import REGISTERS, write_bench_profile

DEVICES = 30



def limit_reads_per_s(baud: int, turnaround_s: float) -> float:
    request, response = 8, 5 + 2 * REGISTERS
    return 1 / (wire_time(request, baud) + t35(baud) + turnaround_s + wire_time(response, baud) + t35(baud))


class CountingSink:
    async def fault_changed(self, change: FaultChange) -> None:
        pass

    async def device_polled(self, snapshot: DeviceSnapshot) -> None:
        pass


async def measure(edge_config: EdgeConfig, registry: ProfileRegistry, seconds: float,
                  live_units: set[int], adaptive: bool) -> dict[str, Any]:
    # "fixed" is the edge before issue 4's second round: the profile's timeout on every
    # request and a backoff counted in poll intervals even when a cycle takes longer.
    settings = SchedulerSettings(timeouts=TimeoutSettings(adaptive=adaptive), backoff_per_cycle=adaptive)
    edge = Edge(edge_config, registry, CountingSink(), scheduler_settings=settings)
    async with edge:
        runner = asyncio.create_task(edge.run())
        await asyncio.sleep(3.0)  # open the port, first cycles, the dead device into backoff

        def responses() -> int:
            return sum(d.requests.responses for d in edge.metrics().devices if d.unit in live_units)

        def timeouts() -> int:
            return sum(d.requests.timeouts for d in edge.metrics().devices)

        def dead_bus_time() -> float:  # what the dead device's probes cost, less noisy than reads/s
            return sum(d.bus_time_s for d in edge.metrics().devices if d.unit not in live_units)

        start_responses, start_timeouts, started = responses(), timeouts(), time.monotonic()
        start_dead = dead_bus_time()
        await asyncio.sleep(seconds)
        elapsed = time.monotonic() - started
        result = {"reads_per_s": (responses() - start_responses) / elapsed,
                  "timeouts": timeouts() - start_timeouts, "seconds": elapsed,
                  "dead_bus_time_s": dead_bus_time() - start_dead}
        runner.cancel()
        try:
            await runner
        except asyncio.CancelledError:
            pass
    return result


def run_case(workdir: Path, baud: int, turnaround_s: float, dead: int, seconds: float,
             adaptive: bool = True) -> dict[str, Any]:
    profiles = workdir / "profiles"
    write_bench_profile(profiles, timeout_ms=150)
    link = workdir / f"tty-{baud}-{dead}"
    served = list(range(1, DEVICES + 1 - dead))  # the last `dead` units are never served
    sim_config = workdir / f"sim-{baud}-{dead}.yaml"
    sim_config.write_text(yaml.safe_dump({
        "time_scale": 1, "control": {"enabled": False}, "profiles_dirs": [str(profiles)],
        "buses": [{"name": "bench", "transport": "rtu", "link": str(link), "baudrate": baud,
                   "wire_timing": True, "turnaround_ms": turnaround_s * 1000,
                   "devices": [{"id": f"dev-{u:02d}", "unit": u, "profile": "bench-10reg"} for u in served]}],
    }))
    sim = subprocess.Popen([sys.executable, "-m", "storeguard", "--log-level", "WARNING", "simulate",
                            "--config", str(sim_config)])
    try:
        deadline = time.monotonic() + 20
        while not link.exists():
            if time.monotonic() > deadline or sim.poll() is not None:
                raise RuntimeError("the simulator did not start")
            time.sleep(0.1)
        edge_config = EdgeConfig.model_validate({"buses": [{
            "name": "bench", "transport": "rtu", "port": str(link),
            "serial": {"baudrate": baud, "bytesize": 8, "parity": "N", "stopbits": 1},
            "poll_interval_s": 0.05,
            "devices": [{"id": f"dev-{u:02d}", "unit": u, "profile": "bench-10reg"} for u in range(1, DEVICES + 1)],
        }]})
        registry = ProfileRegistry.load([profiles])
        result = asyncio.run(measure(edge_config, registry, seconds, set(served), adaptive))
    finally:
        sim.terminate()
        sim.wait(timeout=10)
    limit = limit_reads_per_s(baud, turnaround_s)
    return {"baud": baud, "turnaround_ms": turnaround_s * 1000, "devices": DEVICES, "dead": dead,
            "timeouts_mode": "adaptive" if adaptive else "fixed",
            "limit_reads_per_s": limit, **result, "efficiency": result["reads_per_s"] / limit}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--baud", type=int, nargs="+", default=[9600, 19200])
    parser.add_argument("--turnaround-ms", type=float, default=5.0)
    parser.add_argument("--out", type=Path, default=Path("var/bench"))
    parser.add_argument("--timeouts", choices=("adaptive", "fixed", "both"), default="adaptive")
    parser.add_argument("--dead", type=int, nargs="+", default=[0, 1], choices=(0, 1))
    args = parser.parse_args(argv)
    modes = {"adaptive": (True,), "fixed": (False,), "both": (False, True)}[args.timeouts]
    results = []
    with tempfile.TemporaryDirectory(prefix="sg-bus-") as tmp:
        for baud in args.baud:
            for dead in args.dead:
                for adaptive in modes:
                    mode = "adaptive" if adaptive else "fixed"
                    print(f"    {baud} baud, {DEVICES} devices, {dead} dead, {mode} timeouts: "
                          f"measuring {args.seconds:.0f} s", flush=True)
                    result = run_case(Path(tmp), baud, args.turnaround_ms / 1000, dead, args.seconds, adaptive)
                    results.append(result)
                    print(f"      {result['reads_per_s']:.1f} reads/s of a {result['limit_reads_per_s']:.1f} limit "
                          f"= {100 * result['efficiency']:.1f}% ({result['timeouts']} timeouts, "
                          f"{result['dead_bus_time_s']:.2f} s of bus time on the dead device)", flush=True)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "bus_efficiency.json").write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
