"""Adaptive response timeouts: the RFC 6298 estimator, the wire-time floor, and on a FakeClock
a dead device probed at the learned timeout while a slowing device is never declared dead."""

from __future__ import annotations

import random

import pytest

from edge.clock import FakeClock
from edge.config import BusConfig, DeviceConfig, EdgeConfig
from edge.errors import DeviceTimeout
from edge.runtime import Edge
from edge.scheduler import SchedulerSettings
from edge.timeouts import LatencyEstimate, ResponseTimer, TimeoutSettings, full_timeout_due, rtu_wire_time
from edge.transport import InMemoryTransport
from protocols.modbus.pdu import Table, build_read_request
from protocols.modbus.rtu import t35
from tests.unit.edge.fakes import REGISTRY, FakeBus, FakeDevice, RecordingSink, dixell, running

READ10 = build_read_request(Table.HOLDING, 0, 10)


def test_the_estimator_follows_rfc_6298() -> None:
    estimate = LatencyEstimate()
    assert estimate.rto(0.02) is None
    estimate.sample(0.010)
    assert estimate.srtt == 0.010 and estimate.rttvar == 0.005
    assert estimate.rto(0.001) == pytest.approx(0.010 + 4 * 0.005)
    estimate.sample(0.018)
    assert estimate.rttvar == pytest.approx(0.75 * 0.005 + 0.25 * 0.008)
    assert estimate.srtt == pytest.approx(0.875 * 0.010 + 0.125 * 0.018)
    for _ in range(200):
        estimate.sample(0.010)
    assert estimate.rto(0.02) == pytest.approx(0.030, abs=1e-4)  # no variance left: srtt + G


def test_the_timeout_is_wire_time_plus_the_learned_latency_within_floor_and_configured() -> None:
    timer = ResponseTimer(19200)
    assert timer.timeout("a", READ10, 0.5, full=False, offline=False) == 0.5  # nothing learned yet
    wire = rtu_wire_time(READ10, 19200)
    assert wire == pytest.approx(33 * 11 / 19200)
    for _ in range(100):
        timer.answered("a", READ10, wire + 0.009)  # t3.5 x 2 + 5 ms turnaround beyond the wire
    learned = timer.timeout("a", READ10, 0.5, full=False, offline=False)
    assert learned == pytest.approx(wire + 0.009 + 0.02, abs=1e-3)
    # a device that never answered is probed at what the bus learned
    assert timer.timeout("b", READ10, 0.5, full=False, offline=True) == pytest.approx(learned, abs=1e-3)
    assert timer.timeout("a", READ10, 0.5, full=True, offline=False) == 0.5
    timer.timed_out("a")
    assert timer.timeout("a", READ10, 0.5, full=False, offline=False) == pytest.approx(2 * learned, abs=1e-3)
    assert timer.timeout("a", READ10, 0.5, full=False, offline=True) == pytest.approx(learned, abs=1e-3)
    for _ in range(5):
        timer.timed_out("a")
    assert timer.timeout("a", READ10, 0.5, full=False, offline=False) == 0.5  # doubled up to the cap
    timer.answered("a", READ10, wire + 0.009)
    assert timer.timeout("a", READ10, 0.5, full=False, offline=False) < 0.1  # an answer resets the doubling


def test_a_transport_that_adds_the_wire_time_itself_is_given_the_rest() -> None:
    timer = ResponseTimer(9600, transport_adds_wire=True)
    wire = rtu_wire_time(READ10, 9600)
    for _ in range(100):
        timer.answered("a", READ10, wire + 0.015)
    assert timer.timeout("a", READ10, 0.5, full=False, offline=False) == pytest.approx(0.035, abs=1e-3)


def test_the_floor_covers_two_gaps_on_serial_and_a_network_floor_on_tcp() -> None:
    serial, tcp = ResponseTimer(9600), ResponseTimer(None)
    for timer in (serial, tcp):
        for _ in range(100):
            timer.answered("a", READ10, 0.0)
    wire = rtu_wire_time(READ10, 9600)
    assert serial.timeout("a", READ10, 1.0, full=False, offline=False) == pytest.approx(wire + 2 * t35(9600) + 0.02)
    assert tcp.timeout("a", READ10, 1.0, full=False, offline=False) == pytest.approx(0.1)
    fixed = ResponseTimer(9600, TimeoutSettings(adaptive=False))
    fixed.answered("a", READ10, 0.0)
    assert fixed.timeout("a", READ10, 1.0, full=False, offline=False) == 1.0


def test_the_poll_that_would_declare_a_device_offline_waits_the_full_timeout() -> None:
    due = [full_timeout_due(offline=False, consecutive_failures=n, after_failures=3, full_every=4) for n in range(4)]
    assert due == [False, False, True, True]
    probes = [full_timeout_due(offline=True, consecutive_failures=n, after_failures=3, full_every=4)
              for n in range(3, 12)]
    assert probes == [False, False, False, True, False, False, False, True, False]  # every 4th probe


def bus(*units: int) -> BusConfig:
    devices = [DeviceConfig(id=f"case-{u}", unit=u, profile="dixell-xr75cx") for u in units]
    return BusConfig(name="line-1", transport="rtu", port="/dev/ttyFAKE0", poll_interval_s=5.0, devices=devices)


class SlowingBus:
    """An in-memory bus whose unit 2 answers after a latency the test sets (None: silent)."""

    def __init__(self, fake: FakeBus, clock: FakeClock) -> None:
        self.fake, self.clock = fake, clock
        self.latency: dict[int, float] = {}
        self.timeouts: list[tuple[int, float]] = []

    def factory(self, config: BusConfig, profiles: object) -> _Slow:
        return _Slow(self)


class _Slow(InMemoryTransport):
    def __init__(self, owner: SlowingBus) -> None:
        super().__init__(owner.fake.handler, owner.clock, name="line-1")
        self.owner = owner

    async def request(self, unit: int, pdu: bytes, timeout: float) -> bytes:
        self.owner.timeouts.append((unit, timeout))
        latency = self.owner.latency.get(unit, 0.02)
        if latency > timeout:
            await self.owner.clock.sleep(timeout)
            raise DeviceTimeout(f"unit {unit} did not answer within {timeout:.3f} s")
        await self.owner.clock.sleep(latency)
        return await super().request(unit, pdu, timeout)


def make(slow: SlowingBus, config: BusConfig, sink: RecordingSink) -> Edge:
    return Edge(EdgeConfig(buses=[config]), REGISTRY, sink, slow.clock, slow.factory,  # type: ignore[arg-type]
                scheduler_settings=SchedulerSettings(backoff_max_s=20.0), rng=random.Random(5))


async def test_a_dead_device_is_probed_at_the_learned_timeout_with_a_full_one_now_and_then() -> None:
    clock, sink = FakeClock(), RecordingSink()
    dead = FakeDevice(clock)
    dead.dead = True
    slow = SlowingBus(FakeBus({1: dixell(clock), 2: dead, 3: dixell(clock)}), clock)
    edge = make(slow, bus(1, 2, 3), sink)
    async with running(edge):
        await clock.run_for(600)
    probes = [t for unit, t in slow.timeouts if unit == 2]
    full = [t for t in probes if t == 0.5]
    short = [t for t in probes if t < 0.1]
    assert len(full) + len(short) == len(probes) - 1  # and one doubled retry of the very first poll
    assert len(short) >= 2 * len(full) - 2  # most probes cost the learned timeout, not the profile's 500 ms
    assert ("device_offline", "raised") in sink.codes("case-2")


async def test_a_device_that_slows_down_is_not_declared_dead_by_a_tight_timeout() -> None:
    clock, sink = FakeClock(), RecordingSink()
    slow = SlowingBus(FakeBus({1: dixell(clock), 2: dixell(clock)}), clock)
    edge = make(slow, bus(1, 2), sink)
    async with running(edge):
        await clock.run_for(60)  # learns ~20 ms
        slow.latency[2] = 0.4  # now slow, but within the profile's 500 ms
        await clock.run_for(300)
        metrics = {d.device_id: d for d in edge.metrics().devices}
    assert sink.codes("case-2") == []
    assert metrics["case-2"].online
    assert metrics["case-2"].requests.timeouts > 0  # it cost a few timeouts while it re-learned
    assert metrics["case-2"].response_timeout_s is not None and metrics["case-2"].response_timeout_s > 0.4
