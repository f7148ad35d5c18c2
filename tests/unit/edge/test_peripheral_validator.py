"""The ccTalk bill validator on an in-memory line: latched event conditions, lost events, the
bus echo, NAK / checksum / timeouts counted and taking the device offline, restore."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from datetime import timedelta
from typing import Any, TypeVar

import pytest

from edge.clock import FakeClock
from edge.errors import BadFrame, DeviceTimeout
from edge.metrics import RequestCounters
from edge.model import FaultChange
from edge.peripherals import CcTalkPoller, InMemoryByteTransport
from protocols.cctalk import BillEventCode, build_nak, build_simple_poll
from protocols.mqtt.messages import FaultClass, FaultState, Severity, TicketClass
from simulators.peripherals import SimulatedBillValidator
from tests.unit.edge.fakes import running, value_of
from tests.unit.edge.peripheral_fakes import VALIDATOR, Line, build_edge, fault, validator_bus

T = TypeVar("T")


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def validator() -> SimulatedBillValidator:
    return SimulatedBillValidator(address=40)


async def test_jam_is_a_repair_latched_until_a_credit(clock: FakeClock, validator: SimulatedBillValidator) -> None:
    line = Line(validator)
    edge, sink = build_edge([validator_bus()], {"bill-1": line}, clock)
    async with running(edge):
        await clock.run_for(1.5)
        assert line.requests[:2] == [build_simple_poll(40), bytes([40, 0, 1, 159, 56])]
        validator.inject(BillEventCode.UNSAFE_JAM)
        await clock.run_for(1.0)
        jam = fault(sink, "bill_jam")
        assert jam.ticket_class is TicketClass.REPAIR and jam.evidence["last_event_code"] == 6
        await clock.run_for(10.0)  # no new events: the jam stays
        assert sink.codes() == [("bill_jam", "raised")]
        assert value_of(sink.latest("bill-01"), "bill_jammed") is True
        validator.credit(3)  # a bill went through: the path is clear
        await clock.run_for(1.0)
    assert sink.codes() == [("bill_jam", "raised"), ("bill_jam", "cleared")]
    assert value_of(sink.latest("bill-01"), "event_counter") == 2


async def test_stacker_full_is_a_cash_office_task_cleared_by_removing_the_stacker(
    clock: FakeClock, validator: SimulatedBillValidator
) -> None:
    edge, sink = build_edge([validator_bus()], {"bill-1": Line(validator)}, clock)
    async with running(edge):
        await clock.run_for(1.5)
        validator.inject(BillEventCode.STACKER_FULL)
        await clock.run_for(1.0)
        full = fault(sink, "stacker_full")
        assert full.ticket_class is TicketClass.STORE_TASK and full.fault_class is FaultClass.REVENUE
        validator.inject(BillEventCode.STACKER_REMOVED)
        await clock.run_for(1.0)
    assert sink.codes() == [("stacker_full", "raised"), ("stacker_full", "cleared")]


async def test_a_reset_clears_latched_conditions(clock: FakeClock, validator: SimulatedBillValidator) -> None:
    edge, sink = build_edge([validator_bus()], {"bill-1": Line(validator)}, clock)
    async with running(edge):
        await clock.run_for(1.5)
        validator.inject(BillEventCode.SAFE_JAM)
        await clock.run_for(1.0)
        validator.reset()  # the attendant opened the validator: power-up, counter 0
        await clock.run_for(1.0)
    assert sink.codes() == [("bill_jam", "raised"), ("bill_jam", "cleared")]


async def test_lost_events_raise_a_warning_with_the_count(clock: FakeClock, validator: SimulatedBillValidator) -> None:
    edge, sink = build_edge([validator_bus()], {"bill-1": Line(validator)}, clock)
    async with running(edge):
        await clock.run_for(1.5)
        validator.inject(BillEventCode.STACKER_JAM)  # scrolls out of the 5-pair buffer
        for _ in range(7):
            validator.credit(1)
        await clock.run_for(1.0)
        lost = fault(sink, "events_lost")
        assert lost.severity is Severity.MINOR and lost.evidence["events_lost"] == 3
        assert lost.evidence["event_counter"] == 8
    assert ("bill_jam", "raised") not in sink.codes()  # lost with the events: the reason for the warning
    poller = edge._peripherals[0].devices[0].poller  # noqa: SLF001 - the counter kept for metrics
    assert isinstance(poller, CcTalkPoller) and poller.events_lost_total == 3


@pytest.mark.parametrize("echo", ["auto", "on"])
async def test_the_bus_echo_is_stripped(clock: FakeClock, validator: SimulatedBillValidator, echo: str) -> None:
    edge, sink = build_edge([validator_bus(echo=echo)], {"bill-1": Line(validator, echo=True)}, clock)
    async with running(edge):
        await clock.run_for(1.5)
        validator.inject(BillEventCode.STACKER_JAMMED)
        await clock.run_for(1.0)
    assert sink.codes() == [("bill_jam", "raised")]
    assert fault(sink, "bill_jam").evidence["echo"] is True
    assert edge.metrics().devices[0].requests.bad_frames == 0


async def test_echo_on_without_an_echo_and_a_wrong_echo_fail(clock: FakeClock) -> None:
    validator = SimulatedBillValidator(40)
    poller = CcTalkPoller(40, echo="on")
    counters = (RequestCounters(),)
    transport = InMemoryByteTransport(Line(validator).handle, clock)
    await transport.open()
    with pytest.raises((BadFrame, DeviceTimeout)):
        await _run(clock, poller.poll(transport, 0.1, counters))
    collided = InMemoryByteTransport(lambda r: bytes([40, 0, 1, 200, 0]) + validator.handle(r), clock)
    await collided.open()
    with pytest.raises(BadFrame, match="collision"):
        await _run(clock, poller.poll(collided, 0.1, counters))
    assert counters[0].bad_frames >= 1


async def test_nak_checksum_and_silence_are_counted_then_offline(
    clock: FakeClock, validator: SimulatedBillValidator
) -> None:
    line = Line(validator)
    edge, sink = build_edge([validator_bus()], {"bill-1": line}, clock)
    nak = build_nak(source=40)
    async with running(edge):
        await clock.run_for(0.5)
        line.faults.extend(["garbage"])  # the simple poll's ACK with a bad checksum
        await clock.run_for(1.0)
        original = validator.handle
        validator.handle = lambda request: nak  # type: ignore[method-assign]
        await clock.run_for(1.0)
        validator.handle = original  # type: ignore[method-assign]
        line.dead = True
        await clock.run_for(1.0)
        assert sink.codes() == [("device_offline", "raised")]
        line.dead = False
        await clock.run_for(2.0)
    counters = edge.metrics().devices[0].requests
    assert (counters.crc_errors, counters.exceptions) == (1, 1) and counters.timeouts >= 1
    assert sink.codes() == [("device_offline", "raised"), ("device_offline", "cleared")]
    assert fault(sink, "device_offline").evidence["protocol"] == "cctalk"


async def test_restored_jam_stays_until_the_validator_reports_it_over(
    clock: FakeClock, validator: SimulatedBillValidator
) -> None:
    raised = FaultChange(
        device_id="bill-01", device_model=VALIDATOR, fault_code="bill_jam", state=FaultState.RAISED,
        severity=Severity.MAJOR, fault_class=FaultClass.REVENUE, ticket_class=TicketClass.REPAIR,
        occurred_at=clock.now() - timedelta(minutes=3),
    )  # fmt: skip
    validator.credit(5)  # history from before the restart: a credit, then nothing new
    edge, sink = build_edge([validator_bus()], {"bill-1": Line(validator)}, clock, restored=[raised])
    async with running(edge):
        await clock.run_for(5.5)
        assert sink.codes() == []  # the latch was restored with the fault
        assert edge.active_faults() == [raised]
        validator.credit(2)
        await clock.run_for(1.0)
    assert sink.codes() == [("bill_jam", "cleared")]


async def test_a_jam_at_the_top_of_the_buffer_at_start_is_taken_as_present(
    clock: FakeClock, validator: SimulatedBillValidator
) -> None:
    validator.credit(1)
    validator.inject(BillEventCode.UNSAFE_JAM)
    edge, sink = build_edge([validator_bus()], {"bill-1": Line(validator)}, clock)
    async with running(edge):
        await clock.run_for(0.5)
    assert sink.codes() == [("bill_jam", "raised")]


async def _run(clock: FakeClock, coroutine: Coroutine[Any, Any, T]) -> T:
    task = asyncio.ensure_future(coroutine)
    while not task.done():
        await clock.run_for(0.05)
    return task.result()
