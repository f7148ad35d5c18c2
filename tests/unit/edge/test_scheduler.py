"""Bus scheduling on a FakeClock with in-memory devices: cycle timing, dead-device isolation,
backoff, offline detection, and failed reads counted and survived."""

from __future__ import annotations

import itertools
import random

import pytest

from edge.clock import FakeClock
from edge.config import BusConfig, DeviceConfig, EdgeConfig, RuleOverride
from edge.errors import BadCrc, BadFrame
from edge.runtime import Edge
from edge.scheduler import SchedulerSettings, backoff_delay
from tests.unit.edge.fakes import (
    REGISTRY,
    FakeBus,
    FakeDevice,
    RecordingSink,
    danfoss,
    dixell,
    memory_factory,
    quality_of,
    running,
    value_of,
)

DIXELL_READS = 7


def dixell_bus(units: tuple[int, ...], *, interval: float = 5.0, transport: str = "rtu", **extra: object) -> BusConfig:
    endpoint = {"port": "/dev/ttyFAKE0"} if transport == "rtu" else {"host": "10.0.0.9", "tcp_port": 502}
    devices = [DeviceConfig(id=f"case-{u}", unit=u, profile="dixell-xr75cx", **extra) for u in units]  # type: ignore[arg-type]
    return BusConfig(name="line-1", transport=transport, poll_interval_s=interval, devices=devices, **endpoint)  # type: ignore[arg-type]


def make_edge(bus: BusConfig, fake: FakeBus, clock: FakeClock, sink: RecordingSink, latency: float = 0.0) -> Edge:
    return Edge(
        EdgeConfig(buses=[bus]),
        REGISTRY,
        sink,
        clock,
        memory_factory({bus.name: fake}, clock, latency=latency),
        rng=random.Random(7),
    )


async def test_a_dead_device_does_not_delay_the_others() -> None:
    clock, sink = FakeClock(), RecordingSink()
    live = {1: dixell(clock), 3: dixell(clock)}
    dead = FakeDevice(clock)
    dead.dead = True
    edge = make_edge(dixell_bus((1, 2, 3)), FakeBus({**live, 2: dead}), clock, sink)
    async with running(edge):
        await clock.run_for(60)
        metrics = edge.metrics()
    cycles = metrics.buses[0].cycles
    assert cycles == 13  # t = 0, 5, ..., 60
    # Every cycle starts on time and polls both live devices exactly once.
    assert live[1].poll_starts(DIXELL_READS) == [5.0 * k for k in range(cycles)]
    starts_3 = live[3].poll_starts(DIXELL_READS)
    assert len(starts_3) == cycles
    # Unit 3 waits behind the dead unit 2 by at most one timeout plus one retry (0.5 s each).
    assert all(0 <= t - 5.0 * k <= 1.0 for k, t in enumerate(starts_3))
    assert max(t - 5.0 * k for k, t in list(enumerate(starts_3))[1:]) <= 0.5  # no more retries once failing
    # The dead device is probed far less often than every cycle, with growing gaps.
    probes = sorted({t for t, _ in dead.requests})
    assert len(probes) <= 5
    gaps = [b - a for a, b in itertools.pairwise(probes)]
    assert gaps == sorted(gaps) and gaps[-1] > 2 * gaps[0]
    device = next(d for d in metrics.devices if d.device_id == "case-2")
    assert device.in_backoff and device.backoff_s > 5 and device.skipped_polls > 0
    assert ("device_offline", "raised") in sink.codes("case-2")
    assert sink.codes("case-1") == [] and sink.codes("case-3") == []


async def test_cycles_run_at_the_interval_from_their_start() -> None:
    clock, sink = FakeClock(), RecordingSink()
    device = dixell(clock)
    edge = make_edge(dixell_bus((1,), interval=5.0), FakeBus({1: device}), clock, sink, latency=0.25)
    async with running(edge):
        await clock.run_for(20)
        metrics = edge.metrics()
    # A poll takes 7 x 0.25 s; the next still starts 5 s after the last one started.
    assert device.poll_starts(DIXELL_READS) == [0.0, 5.0, 10.0, 15.0, 20.0]
    assert metrics.buses[0].last_cycle_s == pytest.approx(1.75)
    assert metrics.buses[0].overruns == 0
    assert metrics.devices[0].last_latency_s == pytest.approx(0.25)


async def test_an_overrunning_cycle_is_followed_at_once_without_a_backlog() -> None:
    clock, sink = FakeClock(), RecordingSink()
    device = dixell(clock)
    bus = BusConfig(
        name="line-1",
        transport="rtu",
        port="/dev/ttyFAKE0",
        poll_interval_s=5.0,
        timeout_ms=2000,
        devices=[DeviceConfig(id="case-1", unit=1, profile="dixell-xr75cx")],
    )
    edge = make_edge(bus, FakeBus({1: device}), clock, sink, latency=1.0)
    async with running(edge):
        await clock.run_for(30)
        metrics = edge.metrics()
    # 7 reads x 1 s = 7 s per cycle > 5 s: each cycle starts when the last ended, never two at once.
    assert device.poll_starts(DIXELL_READS) == [0.0, 7.0, 14.0, 21.0, 28.0]
    assert metrics.buses[0].overruns == 4


def test_backoff_grows_with_jitter_and_is_capped() -> None:
    settings = SchedulerSettings(backoff_max_s=60, jitter=0.2)
    rng = random.Random(1)
    assert backoff_delay(1, 5, settings, rng) == 0  # the first failure is retried next cycle
    fractions = []
    for n in range(2, 9):
        base = min(60, 5 * 2 ** (n - 1))
        delay = backoff_delay(n, 5, settings, rng)
        assert 0.8 * base <= delay <= base
        fractions.append(round(delay / base, 6))
    assert len(set(fractions)) > 1  # jittered
    assert backoff_delay(3, 120, settings, rng) <= 120  # the cap never undercuts the poll interval


async def test_offline_after_k_failures_clears_after_m_successes_and_rules_hold() -> None:
    clock, sink = FakeClock(), RecordingSink()
    device = dixell(clock, air=10.0)
    bus = dixell_bus((1,), rules={"high_temperature": RuleOverride(delay_s=0)})
    edge = make_edge(bus, FakeBus({1: device}), clock, sink)
    async with running(edge):
        await clock.settle()
        assert sink.codes() == [("high_temperature", "raised")]
        device.dead = True
        await clock.run_for(5)  # failure 1
        await clock.run_for(5)  # failure 2: backoff starts
        assert sink.codes() == [("high_temperature", "raised")]
        assert sink.latest("case-1").online and value_of(sink.latest("case-1"), "air_temp") == 10.0
        await clock.run_for(15)  # failure 3 within the 8-10 s backoff
        assert sink.codes() == [("high_temperature", "raised"), ("device_offline", "raised")]
        offline = sink.faults[-1]
        assert offline.evidence["failures"] == 3 and offline.evidence["error_type"] == "DeviceTimeout"
        snapshot = edge.snapshots()[0]
        assert not snapshot.online
        assert value_of(snapshot, "air_temp") is None and quality_of(snapshot, "air_temp") == "stale"
        assert sorted(f.fault_code for f in edge.active_faults()) == ["device_offline", "high_temperature"]
        await clock.run_for(120)  # offline for long: the temperature alarm is held, never cleared
        assert sink.codes()[-1] == ("device_offline", "raised")
        device.dead = False
        device.set_temp(256, 4.0)
        await clock.run_for(60)  # the next probe answers (success 1: still offline, still unknown)
        successes = edge.metrics().devices[0].consecutive_successes
        assert successes >= 1
        await clock.run_for(5)
    assert sink.codes()[-2:] == [("device_offline", "cleared"), ("high_temperature", "cleared")]
    cleared = sink.faults[-2]
    assert cleared.evidence["successes"] == 2
    offline_s = cleared.evidence["offline_s"]
    assert isinstance(offline_s, float) and offline_s > 100
    assert edge.active_faults() == []
    assert quality_of(edge.snapshots()[0], "air_temp") == "good"


async def test_first_success_after_offline_keeps_readings_unknown() -> None:
    clock, sink = FakeClock(), RecordingSink()
    device = dixell(clock)
    edge = make_edge(dixell_bus((1,), interval=1.0), FakeBus({1: device}), clock, sink)
    async with running(edge):
        await clock.settle()
        device.dead = True
        for _ in range(20):
            await clock.run_for(1)
        assert ("device_offline", "raised") in sink.codes()
        device.dead = False
        before = len(sink.snapshots)
        for _ in range(60):
            if len(sink.snapshots) > before:
                break
            await clock.run_for(1)
        assert not sink.snapshots[-1].online
        assert quality_of(sink.snapshots[-1], "air_temp") == "stale"
        await clock.run_for(1)
    assert sink.snapshots[-1].online and sink.codes()[-1] == ("device_offline", "cleared")


async def test_failed_reads_are_counted_and_survived() -> None:
    clock, sink = FakeClock(), RecordingSink()
    device = dixell(clock)
    edge = make_edge(dixell_bus((1,)), FakeBus({1: device}), clock, sink)
    async with running(edge):
        await clock.settle()  # t=0: fine
        device.faults.append(BadCrc("noise"))  # t=5: retried once (RTU, healthy device), succeeds
        await clock.run_for(5)
        device.faults.append(0x04)  # t=10: Modbus exception: never retried, the poll failed
        await clock.run_for(5)
        await clock.run_for(5)  # t=15: fine again
        device.faults.extend([BadFrame("truncated"), BadFrame("wrong unit")])  # t=20: both attempts bad
        await clock.run_for(5)
        device.faults.append(b"\x02\x02\x01\x00")  # t=25: 2 bytes for 1 bit; no retry while failing
        await clock.run_for(5)
        await clock.run_for(10)  # t=35 or so, after an 8-10 s backoff: fine
        metrics = edge.metrics()
    d = metrics.devices[0]
    r = d.requests
    assert (r.crc_errors, r.exceptions, r.bad_frames, r.timeouts, r.retries) == (1, 1, 3, 0, 2)
    assert (d.polls, d.failed_polls, d.consecutive_failures) == (7, 3, 0)
    assert r.requests == r.responses + r.crc_errors + r.exceptions + r.bad_frames
    assert metrics.buses[0].requests == r
    assert "BadFrame" in d.last_error and "byte count" in d.last_error
    assert d.online and sink.latest("case-1").online
    assert ("device_offline", "raised") not in sink.codes()
    assert len(sink.snapshots) == 7


async def test_tcp_buses_do_not_retry() -> None:
    clock, sink = FakeClock(), RecordingSink()
    device = dixell(clock)
    edge = make_edge(dixell_bus((1,), transport="tcp"), FakeBus({1: device}), clock, sink)
    async with running(edge):
        await clock.settle()
        device.faults.append(BadFrame("garbage"))
        await clock.run_for(5)
        metrics = edge.metrics()
    assert (metrics.devices[0].requests.retries, metrics.devices[0].failed_polls) == (0, 1)


async def test_a_coalesced_read_refused_for_its_gaps_is_split_for_good() -> None:
    clock, sink = FakeClock(), RecordingSink()
    device = danfoss(clock, air=2.5, fill_gaps=False)  # unmapped registers answer exception 0x02
    bus = BusConfig(
        name="line-1",
        transport="rtu",
        port="/dev/ttyFAKE0",
        devices=[DeviceConfig(id="case-1", unit=1, profile="danfoss-ak-cc55")],
    )
    edge = make_edge(bus, FakeBus({1: device}), clock, sink)
    async with running(edge):
        await clock.settle()
        first = edge.metrics().devices[0]
        await clock.run_for(5)
        second = edge.metrics().devices[0]
    # 2509..2511, 2529..2540 and 20002..20009 bridge gaps: refused once each, then read in parts.
    assert (first.requests.exceptions, first.failed_polls, first.reads_per_poll) == (3, 0, 12)
    assert (second.requests.exceptions, second.failed_polls, second.polls) == (3, 0, 2)
    assert value_of(sink.latest("case-1"), "air_off_temp") == 2.5
    assert value_of(sink.latest("case-1"), "summary_alarm") is False


async def test_illegal_address_on_a_read_without_gaps_fails_the_poll() -> None:
    clock, sink = FakeClock(), RecordingSink()
    device = dixell(clock)
    edge = make_edge(dixell_bus((1,)), FakeBus({1: device}), clock, sink)
    async with running(edge):
        await clock.settle()
        device.faults.append(0x02)
        await clock.run_for(5)
        metrics = edge.metrics().devices[0]
    assert (metrics.failed_polls, metrics.reads_per_poll, metrics.requests.exceptions) == (1, DIXELL_READS, 1)
