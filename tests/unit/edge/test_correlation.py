"""Correlated failures on a FakeClock: a silent bus is one bus_offline, a dark store with its
UPS on battery is one store_power_loss, and a single dead device is still its own fault."""

from __future__ import annotations

import random
from dataclasses import replace

from edge.clock import FakeClock
from edge.config import BusConfig, DeviceConfig, EdgeConfig
from edge.correlation import BUS_FAULT, STORE_DEVICE_ID, STORE_FAULT
from edge.model import FaultChange
from edge.runtime import Edge
from edge.scheduler import SchedulerSettings
from gateway.exposition import _edge
from gateway.metrics import PromText
from protocols.mqtt.messages import FaultClass, FaultState, Severity, TicketClass
from protocols.modbus.pdu import Table
from tests.unit.edge.fakes import REGISTRY, FakeBus, FakeDevice, RecordingSink, dixell, memory_factory, running

SETTINGS = SchedulerSettings(backoff_max_s=20.0)


def line(name: str, units: tuple[int, ...], prefix: str = "case") -> BusConfig:
    devices = [DeviceConfig(id=f"{prefix}-{u}", unit=u, profile="dixell-xr75cx") for u in units]
    return BusConfig(name=name, transport="rtu", port=f"/dev/tty-{name}", poll_interval_s=5.0, devices=devices)


def ups_bus() -> BusConfig:
    device = DeviceConfig(id="ups-1", unit=1, profile="apc-smart-ups-nmc2")
    return BusConfig(name="ups", transport="tcp", host="10.0.0.5", tcp_port=502, poll_interval_s=5.0, devices=[device])


def ups_device(clock: FakeClock, *, on_battery: bool) -> FakeDevice:
    device = FakeDevice(clock)
    for address in range(3, 13):
        device.set(Table.HOLDING, address, 0)
    device.set_bit(Table.HOLDING, 3, 3, not on_battery)
    device.set_bit(Table.HOLDING, 3, 4, on_battery)
    device.set(Table.HOLDING, 5, 80)
    device.set(Table.HOLDING, 6, 25)
    return device


def make_edge(buses: list[BusConfig], fakes: dict[str, FakeBus], clock: FakeClock, sink: RecordingSink,
              restored: list[FaultChange] | None = None) -> Edge:
    return Edge(EdgeConfig(buses=buses), REGISTRY, sink, clock, memory_factory(fakes, clock),
                scheduler_settings=SETTINGS, rng=random.Random(3), restored_faults=restored or [])


def kill(devices: dict[int, FakeDevice], dead: bool = True) -> None:
    for device in devices.values():
        device.dead = dead


def offline_events(sink: RecordingSink) -> list[tuple[str, str]]:
    return [(f.device_id, f.state.value) for f in sink.faults if f.fault_code == "device_offline"]


def events(sink: RecordingSink, code: str) -> list[tuple[str, str]]:
    return [(f.device_id, f.state.value) for f in sink.faults if f.fault_code == code]


async def test_a_silent_bus_is_one_bus_fault_and_clears_when_it_answers() -> None:
    clock, sink = FakeClock(), RecordingSink()
    units = {u: dixell(clock) for u in (1, 2, 3)}
    edge = make_edge([line("line-1", (1, 2, 3))], {"line-1": FakeBus(units)}, clock, sink)
    async with running(edge):
        await clock.run_for(20)
        kill(units)
        await clock.run_for(90)
        assert events(sink, BUS_FAULT) == [("line-1", "raised")]
        assert offline_events(sink) == []
        raised = sink.faults[-1]
        assert raised.device_model == "bus" and raised.severity is Severity.CRITICAL
        assert raised.ticket_class is TicketClass.REPAIR and raised.fault_class is FaultClass.EQUIPMENT
        assert raised.evidence["devices_silent"] == 3 and raised.evidence["transport"] == "rtu"
        assert raised.evidence["endpoint"] == "/dev/tty-line-1"
        assert raised.evidence["devices"] == "case-1, case-2, case-3"
        assert "DeviceTimeout" in str(raised.evidence["last_errors"])
        active = [(f.device_id, f.fault_code) for f in edge.active_faults()]
        assert active == [("line-1", BUS_FAULT)]  # the held device_offline faults are not listed
        metrics = edge.metrics()
        assert metrics.bus_faults[0].fault_active and metrics.bus_faults[0].devices_held == 3
        text = PromText()
        _edge(text, metrics)
        assert 'storeguard_edge_bus_fault_fault_active{bus="line-1"} 1' in text.render()
        assert 'storeguard_edge_bus_fault_devices_held{bus="line-1"} 3' in text.render()
        kill(units, dead=False)
        await clock.run_for(30)  # the first answer clears it; every device is probed at once
    assert events(sink, BUS_FAULT) == [("line-1", "raised"), ("line-1", "cleared")]
    assert offline_events(sink) == []  # the held raises came back online: never reported
    assert all(s.online for s in edge.snapshots())
    assert edge.active_faults() == []


async def test_a_single_dead_device_on_a_live_bus_is_still_device_offline() -> None:
    clock, sink = FakeClock(), RecordingSink()
    units = {u: dixell(clock) for u in (1, 2, 3)}
    edge = make_edge([line("line-1", (1, 2, 3))], {"line-1": FakeBus(units)}, clock, sink)
    async with running(edge):
        await clock.run_for(10)
        units[2].dead = True
        await clock.run_for(60)
    assert offline_events(sink) == [("case-2", "raised")]
    assert events(sink, BUS_FAULT) == []


async def test_a_device_still_silent_when_its_bus_returns_gets_its_own_fault() -> None:
    clock, sink = FakeClock(), RecordingSink()
    units = {u: dixell(clock) for u in (1, 2, 3)}
    edge = make_edge([line("line-1", (1, 2, 3))], {"line-1": FakeBus(units)}, clock, sink)
    async with running(edge):
        await clock.run_for(10)
        kill(units)
        await clock.run_for(90)
        units[1].dead = units[3].dead = False
        await clock.run_for(60)
    assert events(sink, BUS_FAULT) == [("line-1", "raised"), ("line-1", "cleared")]
    assert offline_events(sink) == [("case-2", "raised")]
    cleared = next(i for i, f in enumerate(sink.faults) if f.fault_code == BUS_FAULT and f.state is FaultState.CLEARED)
    raised = next(i for i, f in enumerate(sink.faults) if f.fault_code == "device_offline")
    assert cleared < raised
    assert [(f.device_id, f.fault_code) for f in edge.active_faults()] == [("case-2", "device_offline")]


async def test_a_bus_of_one_device_never_raises_a_bus_fault() -> None:
    clock, sink = FakeClock(), RecordingSink()
    units = {1: dixell(clock)}
    edge = make_edge([line("line-1", (1,))], {"line-1": FakeBus(units)}, clock, sink)
    async with running(edge):
        await clock.run_for(10)
        kill(units)
        await clock.run_for(60)
    assert offline_events(sink) == [("case-1", "raised")] and events(sink, BUS_FAULT) == []


def store(clock: FakeClock) -> tuple[list[BusConfig], dict[str, FakeBus], dict[int, FakeDevice],
                                                           dict[int, FakeDevice], FakeDevice]:
    a = {u: dixell(clock) for u in (1, 2)}
    b = {u: dixell(clock) for u in (1, 2, 3)}
    ups = ups_device(clock, on_battery=False)
    buses = [line("line-a", (1, 2), "a"), line("line-b", (1, 2, 3), "b"), ups_bus()]
    fakes = {"line-a": FakeBus(a), "line-b": FakeBus(b), "ups": FakeBus({1: ups})}
    return buses, fakes, a, b, ups


async def test_every_bus_silent_with_the_ups_on_battery_is_one_store_power_loss() -> None:
    clock, sink = FakeClock(), RecordingSink()
    buses, fakes, a, b, ups = store(clock)
    edge = make_edge(buses, fakes, clock, sink)
    async with running(edge):
        await clock.run_for(10)
        ups.set_bit(Table.HOLDING, 3, 4, True)  # mains lost: the UPS goes on battery...
        ups.set_bit(Table.HOLDING, 3, 3, False)
        kill(a)  # ...and every controller goes dark
        kill(b)
        await clock.run_for(90)
        assert events(sink, STORE_FAULT) == [(STORE_DEVICE_ID, "raised")]
        assert events(sink, BUS_FAULT) == [] and offline_events(sink) == []
        loss = next(f for f in sink.faults if f.fault_code == STORE_FAULT)
        assert loss.severity is Severity.CRITICAL and loss.fault_class is FaultClass.FOOD_SAFETY
        assert loss.evidence["ups_on_battery"] == "ups-1" and loss.evidence["devices_silent"] == 5
        assert loss.evidence["battery_charge"] == 80
        assert events(sink, "on_battery") == [("ups-1", "raised")]  # the UPS's own notice still flows
        assert {f.fault_code for f in edge.active_faults()} == {STORE_FAULT, "on_battery"}
        assert edge.metrics().store is not None and edge.metrics().store.power_loss_active  # type: ignore[union-attr]
        ups.set_bit(Table.HOLDING, 3, 4, False)  # power back, but line-b stays dark
        kill(a, dead=False)
        await clock.run_for(90)
    assert events(sink, STORE_FAULT) == [(STORE_DEVICE_ID, "raised"), (STORE_DEVICE_ID, "cleared")]
    assert events(sink, BUS_FAULT) == [("line-b", "raised")]  # still silent after the power came back
    assert offline_events(sink) == []


async def test_every_bus_silent_with_the_ups_on_mains_is_bus_faults() -> None:
    clock, sink = FakeClock(), RecordingSink()
    buses, fakes, a, b, _ = store(clock)
    edge = make_edge(buses, fakes, clock, sink)
    async with running(edge):
        await clock.run_for(10)
        kill(a)
        kill(b)
        await clock.run_for(90)
    assert events(sink, STORE_FAULT) == []
    assert sorted(events(sink, BUS_FAULT)) == [("line-a", "raised"), ("line-b", "raised")]
    assert offline_events(sink) == []


async def test_a_restored_bus_fault_resumes_and_clears_on_the_first_answer() -> None:
    clock, sink = FakeClock(), RecordingSink()
    units = {u: dixell(clock) for u in (1, 2, 3)}
    kill(units)
    restored = FaultChange(
        device_id="line-1", device_model="bus", fault_code=BUS_FAULT, state=FaultState.RAISED,
        severity=Severity.CRITICAL, fault_class=FaultClass.EQUIPMENT, ticket_class=TicketClass.REPAIR,
        occurred_at=clock.now(),
    )
    gone = replace(restored, device_id="line-9")
    edge = make_edge([line("line-1", (1, 2, 3))], {"line-1": FakeBus(units)}, clock, sink, [restored, gone])
    assert [(f.device_id, f.fault_code) for f in edge.active_faults()] == [("line-1", BUS_FAULT)]
    async with running(edge):
        await clock.run_for(90)
        assert events(sink, BUS_FAULT) == [("line-9", "cleared")]  # a bus no longer configured
        assert sink.faults[0].evidence["reason"] == "no_longer_applies"
        assert offline_events(sink) == []  # still silent: held under the resumed bus fault
        kill(units, dead=False)
        await clock.run_for(30)
    assert events(sink, BUS_FAULT) == [("line-9", "cleared"), ("line-1", "cleared")]
    assert offline_events(sink) == []


async def test_a_bus_fault_raised_before_the_ups_said_on_battery_is_superseded_by_the_power_loss() -> None:
    clock, sink = FakeClock(), RecordingSink()
    buses, fakes, a, b, ups = store(clock)
    buses[2] = buses[2].model_copy(update={"poll_interval_s": 120.0})  # the UPS is polled rarely
    edge = make_edge(buses, fakes, clock, sink)
    async with running(edge):
        await clock.run_for(10)
        ups.set_bit(Table.HOLDING, 3, 4, True)
        kill(a)
        kill(b)
        await clock.run_for(100)  # both buses silent long before the UPS is read again
        assert sorted(events(sink, BUS_FAULT)) == [("line-a", "raised"), ("line-b", "raised")]
        await clock.run_for(40)  # the UPS poll at t = 120 s completes the picture
    assert events(sink, STORE_FAULT) == [(STORE_DEVICE_ID, "raised")]
    cleared = [f for f in sink.faults if f.fault_code == BUS_FAULT and f.state is FaultState.CLEARED]
    assert sorted(f.device_id for f in cleared) == ["line-a", "line-b"]
    assert all(f.evidence["reason"] == "superseded" and f.evidence["by"] == STORE_FAULT for f in cleared)
    assert offline_events(sink) == []
    assert {f.fault_code for f in edge.active_faults()} == {STORE_FAULT, "on_battery"}
