"""The ESC/POS printer on an in-memory line: status bytes -> conditions -> faults with the
profile's delays, offline after K failed polls, bad status bytes counted, restore."""

from __future__ import annotations

from datetime import timedelta

import pytest
from pydantic import ValidationError

from edge.clock import FakeClock
from edge.config import BusConfig, EdgeConfig
from edge.errors import EdgeConfigError
from edge.model import FaultChange
from edge.runtime import Edge
from protocols.mqtt.messages import FaultClass, FaultState, Severity, TicketClass
from simulators.peripherals import SimulatedPrinter
from tests.unit.edge.fakes import REGISTRY, RecordingSink, running, value_of
from tests.unit.edge.peripheral_fakes import PRINTER, Line, build_edge, fault, printer_bus


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def printer() -> SimulatedPrinter:
    return SimulatedPrinter()


async def test_healthy_printer_reads_every_condition_false(clock: FakeClock, printer: SimulatedPrinter) -> None:
    line = Line(printer)
    edge, sink = build_edge([printer_bus()], {"printer-1": line}, clock)
    async with running(edge):
        await clock.run_for(0.5)
    snapshot = sink.latest("printer-01")
    assert snapshot.online and snapshot.device_model == PRINTER
    assert value_of(snapshot, "paper_near_end") is False and value_of(snapshot, "cutter_error") is False
    assert line.requests[:4] == [b"\x10\x04\x01", b"\x10\x04\x02", b"\x10\x04\x03", b"\x10\x04\x04"]
    assert sink.faults == []
    metrics = edge.metrics()
    assert metrics.buses[0].transport == "escpos" and metrics.buses[0].requests.responses == 4
    assert metrics.devices[0].reads_per_poll == 4


async def test_paper_near_end_is_a_store_task_at_once_and_paper_end_waits_two_minutes(
    clock: FakeClock, printer: SimulatedPrinter
) -> None:
    edge, sink = build_edge([printer_bus()], {"printer-1": Line(printer)}, clock)
    async with running(edge):
        await clock.run_for(1.5)
        printer.state.paper_near_end = True
        await clock.run_for(1.0)
        near = fault(sink, "paper_near_end")
        assert near.ticket_class is TicketClass.STORE_TASK and near.severity is Severity.MINOR
        assert near.evidence["status_bytes"] == "12 12 12 1E"  # DLE EOT 4: near end bits 0x0C
        printer.state.paper_end = True
        await clock.run_for(119.0)
        assert ("paper_end", "raised") not in sink.codes()
        await clock.run_for(2.0)
        end = fault(sink, "paper_end")
        assert end.severity is Severity.MAJOR and end.fault_class is FaultClass.REVENUE
        beyond = end.evidence["beyond_s"]
        assert isinstance(beyond, float) and beyond >= 120
        printer.state.paper_end = printer.state.paper_near_end = False  # a new roll
        await clock.run_for(12.0)
    assert sink.codes()[-2:] in (
        [("paper_end", "cleared"), ("paper_near_end", "cleared")],
        [("paper_near_end", "cleared"), ("paper_end", "cleared")],
    )
    assert edge.active_faults() == []


async def test_cutter_error_is_a_repair_and_a_short_cover_opening_is_nothing(
    clock: FakeClock, printer: SimulatedPrinter
) -> None:
    edge, sink = build_edge([printer_bus()], {"printer-1": Line(printer)}, clock)
    async with running(edge):
        await clock.run_for(1.0)
        printer.state.cover_open = True
        await clock.run_for(30.0)
        printer.state.cover_open = False
        printer.state.cutter_error = True
        await clock.run_for(2.0)
    assert sink.codes() == [("printer_cutter_error", "raised")]
    assert fault(sink, "printer_cutter_error").ticket_class is TicketClass.REPAIR


async def test_silent_printer_goes_offline_after_k_polls_and_back_after_m(
    clock: FakeClock, printer: SimulatedPrinter
) -> None:
    line = Line(printer)
    edge, sink = build_edge([printer_bus()], {"printer-1": line}, clock)
    async with running(edge):
        await clock.run_for(1.5)
        line.dead = True
        await clock.run_for(2.5)  # two failed polls (each costs the 0.3 s timeout)
        assert sink.codes() == []
        await clock.run_for(1.0)
        assert sink.codes() == [("device_offline", "raised")]
        offline = fault(sink, "device_offline")
        assert offline.evidence["error_type"] == "DeviceTimeout" and offline.evidence["failures"] == 3
        assert sink.latest("printer-01").online is False
        assert value_of(sink.latest("printer-01"), "paper_end") is None
        line.dead = False
        await clock.run_for(1.0)
        assert sink.codes() == [("device_offline", "raised")]  # one good poll is not enough
        await clock.run_for(1.0)
    assert sink.codes() == [("device_offline", "raised"), ("device_offline", "cleared")]
    assert edge.metrics().devices[0].requests.timeouts >= 3


async def test_a_byte_that_is_no_status_byte_fails_the_poll_as_a_bad_frame(clock: FakeClock) -> None:
    garbage = Line(SimulatedPrinter())
    edge, sink = build_edge([printer_bus()], {"printer-1": garbage}, clock)
    garbage.faults.extend(["garbage"] * 12)
    async with running(edge):
        await clock.run_for(2.5)
    assert sink.codes() == [("device_offline", "raised")]
    counters = edge.metrics().devices[0].requests
    assert counters.bad_frames == 3 and counters.timeouts == 0


async def test_restored_fault_of_a_printer_clears_when_the_status_says_so(
    clock: FakeClock, printer: SimulatedPrinter
) -> None:
    raised = FaultChange(
        device_id="printer-01", device_model=PRINTER, fault_code="paper_near_end", state=FaultState.RAISED,
        severity=Severity.MINOR, fault_class=FaultClass.REVENUE, ticket_class=TicketClass.STORE_TASK,
        occurred_at=clock.now() - timedelta(minutes=5),
    )  # fmt: skip
    edge, sink = build_edge([printer_bus()], {"printer-1": Line(printer)}, clock, restored=[raised])
    assert edge.active_faults() == [raised]
    async with running(edge):
        await clock.run_for(0.5)
        assert sink.codes() == []  # clear_delay 10 s
        await clock.run_for(11.0)
    assert sink.codes() == [("paper_near_end", "cleared")]
    active = fault(sink, "paper_near_end", "cleared").evidence["active_s"]
    assert isinstance(active, float) and active >= 300


async def test_device_rule_overrides_apply_to_conditions(clock: FakeClock, printer: SimulatedPrinter) -> None:
    bus = printer_bus(rules={"paper_end": {"delay_s": 5}, "paper_near_end": {"enabled": False}})
    edge, sink = build_edge([bus], {"printer-1": Line(printer)}, clock)
    printer.state.paper_end = printer.state.paper_near_end = True
    async with running(edge):
        await clock.run_for(6.5)
    assert sink.codes() == [("paper_end", "raised")]


def test_profiles_and_buses_must_match() -> None:
    modbus_on_escpos = printer_bus().model_copy(
        update={"devices": [printer_bus().devices[0].model_copy(update={"profile": "dixell-xr75cx"})]}
    )
    with pytest.raises(EdgeConfigError, match=r"profile dixell-xr75cx speaks modbus, not escpos"):
        Edge(EdgeConfig(buses=[modbus_on_escpos]), REGISTRY, RecordingSink(), FakeClock())
    printer_on_rtu = BusConfig.model_validate(
        {"name": "rs485", "transport": "rtu", "port": "/dev/ttyX", "devices": [{"id": "p", "unit": 1, "profile": PRINTER}]}
    )
    with pytest.raises(EdgeConfigError, match=r"profile epson-tm-t88-escpos speaks escpos, not modbus"):
        Edge(EdgeConfig(buses=[printer_on_rtu]), REGISTRY, RecordingSink(), FakeClock())
    with pytest.raises(EdgeConfigError, match="unknown condition 'high_temperature'"):
        Edge(EdgeConfig(buses=[printer_bus(rules={"high_temperature": {"delay_s": 1}})]), REGISTRY, RecordingSink(),
             FakeClock())  # fmt: skip
    with pytest.raises(EdgeConfigError, match="it has no limit"):
        Edge(EdgeConfig(buses=[printer_bus(rules={"paper_end": {"limit": 1}})]), REGISTRY, RecordingSink(),
             FakeClock())  # fmt: skip


def test_bus_config_rules_for_peripheral_ports() -> None:
    with pytest.raises(ValidationError, match="one printer, with unit 1"):
        BusConfig.model_validate({"name": "p", "transport": "escpos", "port": "/dev/x",
                                  "devices": [{"id": "p", "unit": 2, "profile": PRINTER}]})  # fmt: skip
    with pytest.raises(ValidationError, match="needs 'port'"):
        BusConfig.model_validate({"name": "p", "transport": "escpos", "devices": [{"id": "p", "unit": 1, "profile": PRINTER}]})
    with pytest.raises(ValidationError, match="1 is the host"):
        BusConfig.model_validate({"name": "b", "transport": "cctalk", "port": "/dev/x",
                                  "devices": [{"id": "b", "unit": 1, "profile": "x"}]})  # fmt: skip
    with pytest.raises(ValidationError, match="above 247"):
        BusConfig.model_validate({"name": "m", "transport": "rtu", "port": "/dev/x",
                                  "devices": [{"id": "m", "unit": 250, "profile": "x"}]})  # fmt: skip
    with pytest.raises(ValidationError, match="'echo' applies to cctalk buses only"):
        BusConfig.model_validate({"name": "p", "transport": "escpos", "port": "/dev/x", "echo": "on",
                                  "devices": [{"id": "p", "unit": 1, "profile": PRINTER}]})  # fmt: skip
    ok = BusConfig.model_validate({"name": "b", "transport": "cctalk", "port": "/dev/x",
                                   "devices": [{"id": "b", "unit": 250, "profile": "x"}]})  # fmt: skip
    assert ok.devices[0].unit == 250
