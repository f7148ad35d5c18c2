"""The Edge as the gateway uses it: config validation, several buses at once, the sink,
snapshots, active faults and metrics."""

from __future__ import annotations

import random

import pytest

from device_profiles.schema import SerialSettings
from edge.clock import FakeClock
from edge.config import BusConfig, DeviceConfig, EdgeConfig, RuleOverride
from edge.errors import EdgeConfigError
from edge.model import FaultChange
from edge.runtime import Edge
from edge.scheduler import SchedulerSettings
from edge.transport import RtuOverTcpTransport, SerialRtuTransport, TcpTransport, default_transport_factory
from protocols.modbus.pdu import Table
from tests.unit.edge.fakes import (
    REGISTRY,
    FakeBus,
    FakeDevice,
    RecordingSink,
    danfoss,
    memory_factory,
    profile,
    quality_of,
    running,
    value_of,
)


def device(id: str, unit: int, model: str, **extra: object) -> DeviceConfig:
    return DeviceConfig(id=id, unit=unit, profile=model, **extra)  # type: ignore[arg-type]


def rtu(name: str, *devices: DeviceConfig, **extra: object) -> BusConfig:
    return BusConfig(name=name, transport="rtu", port="/dev/ttyFAKE", devices=list(devices), **extra)  # type: ignore[arg-type]


def tcp(name: str, *devices: DeviceConfig, **extra: object) -> BusConfig:
    return BusConfig(name=name, transport="tcp", host="10.1.1.1", tcp_port=502, devices=list(devices), **extra)  # type: ignore[arg-type]


def build(*buses: BusConfig) -> Edge:
    return Edge(EdgeConfig(buses=list(buses)), REGISTRY, RecordingSink(), FakeClock())


# --- configuration errors ---------------------------------------------------------------------


def test_unknown_profile_is_a_config_error() -> None:
    with pytest.raises(
        EdgeConfigError, match=r"device 'c1' on bus 'b1': unknown device profile 'acme-9000' \(known: .*danfoss-ak-cc55"
    ):
        build(rtu("b1", device("c1", 1, "acme-9000")))


def test_bad_override_is_a_config_error_naming_device_and_rule() -> None:
    bad = device("c1", 1, "dixell-xr75cx", rules={"low_temperature": RuleOverride(limit=1.0)})
    with pytest.raises(
        EdgeConfigError, match=r"device 'c1': rule 'low_temperature': clear level 0\.0 must not be below"
    ):
        build(rtu("b1", bad))


def test_devices_of_one_serial_line_must_agree_on_its_settings() -> None:
    devices = (device("c1", 1, "dixell-xr75cx"), device("c2", 2, "danfoss-ak-cc55"))
    with pytest.raises(EdgeConfigError, match=r"bus 'b1': .* disagree on serial settings"):
        build(rtu("b1", *devices))
    build(rtu("b1", *devices, serial=SerialSettings(baudrate=9600)))  # the bus decides


def test_unit_0_is_broadcast_on_rtu() -> None:
    with pytest.raises(EdgeConfigError, match="unit 0 is the RTU broadcast address"):
        build(rtu("b1", device("c1", 0, "dixell-xr75cx")))
    build(tcp("b1", device("c1", 0, "storeguard-sco-lane")))


def test_default_factory_builds_the_configured_transport() -> None:
    dixell = profile("dixell-xr75cx")
    serial_bus = rtu("b1", device("c1", 1, "dixell-xr75cx"))
    serial = default_transport_factory(serial_bus, {1: dixell})
    assert isinstance(serial, SerialRtuTransport) and serial.quiet_time == pytest.approx(0.00401, abs=1e-5)
    assert isinstance(default_transport_factory(tcp("b2", device("c2", 1, "dixell-xr75cx")), {1: dixell}), TcpTransport)
    tunnel = BusConfig(
        name="b3", transport="rtu_over_tcp", host="h", tcp_port=4001, devices=[device("c3", 1, "dixell-xr75cx")]
    )
    assert isinstance(default_transport_factory(tunnel, {1: dixell}), RtuOverTcpTransport)


async def test_run_needs_the_context_manager() -> None:
    edge = build(tcp("b1", device("c1", 1, "storeguard-sco-lane")))
    with pytest.raises(RuntimeError, match="async with"):
        await edge.run()


# --- running --------------------------------------------------------------------------------


def sco_lane() -> FakeDevice:
    lane = FakeDevice()
    for address in range(12):
        lane.set(Table.INPUT, address, 0)
    lane.set(Table.INPUT, 0, 1)  # in use
    lane.set(Table.INPUT, 1, 0x12)  # ESC/POS all fine
    lane.set(Table.INPUT, 10, 0x0001)  # transactions, high word
    lane.set(Table.INPUT, 11, 0x0002)
    lane.set(Table.DISCRETE, 0, 1)
    return lane


async def test_two_buses_poll_concurrently_and_feed_the_sink() -> None:
    clock, sink = FakeClock(), RecordingSink()
    cases = rtu(
        "cases",
        device("case-1", 1, "danfoss-ak-cc55", location="dairy", rules={"high_temperature": RuleOverride(delay_s=0)}),
        poll_interval_s=10,
    )
    lanes = tcp(
        "lanes",
        device("lane-1", 1, "storeguard-sco-lane"),
        device("lane-2", 2, "storeguard-sco-lane"),
        poll_interval_s=2,
    )
    fakes = {
        "cases": FakeBus({1: danfoss(clock, air=9.0)}),
        "lanes": FakeBus({1: sco_lane(), 2: sco_lane()}),
    }
    fakes["lanes"].devices[2].set(Table.INPUT, 5, 14)  # lane 2: bill stacker full
    edge = Edge(
        EdgeConfig(buses=[cases, lanes]), REGISTRY, sink, clock, memory_factory(fakes, clock), rng=random.Random(3)
    )
    async with running(edge):
        await clock.run_for(20)
        snapshots = {s.device_id: s for s in edge.snapshots()}
        metrics = edge.metrics()
        faults = edge.active_faults()
    case = snapshots["case-1"]
    assert case.online and case.location == "dairy"
    assert case.read_at == case.last_ok_at == clock.now()  # the last poll was at t = 20 s, now
    assert value_of(case, "air_off_temp") == 9.0 and value_of(case, "u00_state") == "normal"
    assert value_of(snapshots["lane-1"], "transactions") == 0x00010002
    assert value_of(snapshots["lane-1"], "lane_state") == "in_use"
    assert value_of(snapshots["lane-1"], "scanner_ok") is True
    assert quality_of(snapshots["lane-2"], "bill_event") == "good"
    assert sorted((f.device_id, f.fault_code) for f in faults) == [
        ("case-1", "high_temperature"),
        ("lane-2", "bill_stacker_full"),
    ]
    # Each bus kept its own interval: 0, 10, 20 and, the second of two buses starting half the
    # shortest interval (2 s) late, 1, 3, ..., 19.
    by_bus = {b.bus: b for b in metrics.buses}
    assert (by_bus["cases"].cycles, by_bus["lanes"].cycles) == (3, 10)
    assert by_bus["lanes"].requests.requests == 10 * 2 * 2  # two reads per lane per cycle
    danfoss_metrics = next(d for d in metrics.devices if d.device_id == "case-1")
    assert (danfoss_metrics.reads_per_poll, danfoss_metrics.reads_coalesced) == (7, 3 * 7)  # 14 points in 7 reads
    assert sum(1 for s in sink.snapshots if s.device_id == "lane-1") == 10
    assert sorted(sink.codes()) == [("bill_stacker_full", "raised"), ("high_temperature", "raised")]


@pytest.mark.parametrize(("stagger", "expected"), [(True, [0.0, 0.5, 1.0, 1.5]), (False, [0.0, 0.0, 0.0, 0.0])])
async def test_buses_start_staggered_over_the_poll_interval(stagger: bool, expected: list[float]) -> None:
    """Bus k of N (config order) polls first k/N of the poll interval after bus 0, then every interval."""
    clock, sink = FakeClock(), RecordingSink()
    names = [f"lanes-{k}" for k in range(4)]
    buses = [tcp(name, device(f"lane-{k}", 1, "storeguard-sco-lane"), poll_interval_s=2) for k, name in enumerate(names)]
    fakes = {name: FakeBus({1: sco_lane()}) for name in names}
    edge = Edge(EdgeConfig(buses=buses), REGISTRY, sink, clock, memory_factory(fakes, clock),
                scheduler_settings=SchedulerSettings(stagger_buses=stagger), rng=random.Random(3))
    start = clock.now()
    async with running(edge):
        await clock.run_for(3.9)
    polled: dict[str, list[float]] = {}
    for snapshot in sink.snapshots:
        assert snapshot.read_at is not None
        polled.setdefault(snapshot.device_id, []).append((snapshot.read_at - start).total_seconds())
    assert [polled[f"lane-{k}"][0] for k in range(4)] == pytest.approx(expected, abs=0.01)
    assert all(times[1] - times[0] == pytest.approx(2.0, abs=0.01) for times in polled.values())


async def test_metrics_are_copies() -> None:
    clock = FakeClock()
    lanes = tcp("lanes", device("lane-1", 1, "storeguard-sco-lane"))
    edge = Edge(
        EdgeConfig(buses=[lanes]),
        REGISTRY,
        RecordingSink(),
        clock,
        memory_factory({"lanes": FakeBus({1: sco_lane()})}, clock),
    )
    async with running(edge):
        await clock.settle()
        first = edge.metrics()
        first.devices[0].requests.requests += 100
        assert edge.metrics().devices[0].requests.requests == 2


async def test_faults_are_delivered_before_the_snapshot_of_their_poll() -> None:
    order: list[str] = []

    class Sink:
        async def fault_changed(self, change):  # type: ignore[no-untyped-def]
            order.append(f"fault:{change.fault_code}")

        async def device_polled(self, snapshot):  # type: ignore[no-untyped-def]
            order.append("snapshot")

    clock = FakeClock()
    lanes = tcp("lanes", device("lane-1", 1, "storeguard-sco-lane"))
    lane = sco_lane()
    lane.set(Table.INPUT, 5, 7)  # stacker jam, raised at once
    edge = Edge(
        EdgeConfig(buses=[lanes]), REGISTRY, Sink(), clock, memory_factory({"lanes": FakeBus({1: lane})}, clock)
    )
    async with running(edge):
        await clock.settle()
    assert order == ["fault:bill_validator_jam", "snapshot"]


async def test_snapshots_before_the_first_poll_are_unknown() -> None:
    edge = build(tcp("b1", device("c1", 1, "storeguard-sco-lane")))
    (snapshot,) = edge.snapshots()
    assert not snapshot.online and snapshot.read_at is None
    assert {r.quality.value for r in snapshot.readings} == {"stale"}


async def test_a_failing_sink_ends_run_instead_of_losing_fault_events() -> None:
    class BrokenSink(RecordingSink):
        async def fault_changed(self, change: FaultChange) -> None:
            raise OSError("outbox disk full")

    clock = FakeClock()
    lane = sco_lane()
    lane.set(Table.INPUT, 5, 7)  # stacker jam, raised at once
    lanes = tcp("lanes", device("lane-1", 1, "storeguard-sco-lane"))
    factory = memory_factory({"lanes": FakeBus({1: lane})}, clock)
    async with Edge(EdgeConfig(buses=[lanes]), REGISTRY, BrokenSink(), clock, factory) as edge:
        with pytest.raises(ExceptionGroup) as caught:
            await edge.run()
    assert caught.group_contains(OSError, match="disk full")
