"""The edge's peripheral pollers through pyserial against the byte-exact simulators on ptys."""

from __future__ import annotations

from pathlib import Path

import pytest

from edge.clock import SystemClock
from edge.config import BusConfig, EdgeConfig
from edge.runtime import Edge
from protocols.cctalk import BillEventCode
from protocols.mqtt.messages import TicketClass
from simulators.peripherals import PeripheralSerialServer, SimulatedBillValidator, SimulatedPrinter
from tests.unit.edge.fakes import REGISTRY, RecordingSink, running, value_of, wait_until

pytestmark = pytest.mark.timeout(30)


def _edge(*buses: dict[str, object]) -> tuple[Edge, RecordingSink]:
    sink = RecordingSink()
    config = EdgeConfig(buses=[BusConfig.model_validate(b) for b in buses])
    return Edge(config, REGISTRY, sink, SystemClock()), sink


async def test_printer_out_of_paper_becomes_a_store_task(tmp_path: Path) -> None:
    printer = SimulatedPrinter()
    async with PeripheralSerialServer(printer, link=tmp_path / "ttyPRN") as server:
        edge, sink = _edge({
            "name": "printer", "transport": "escpos", "port": str(server.link), "poll_interval_s": 0.05,
            "devices": [{"id": "printer-01", "unit": 1, "profile": "epson-tm-t88-escpos",
                         "rules": {"paper_end": {"delay_s": 0.2, "clear_delay_s": 0.2}}}],
        })  # fmt: skip
        async with running(edge):
            await wait_until(lambda: any(s.online for s in sink.snapshots), timeout=5)
            printer.state.paper_end = True
            await wait_until(lambda: ("paper_end", "raised") in sink.codes(), timeout=5)
            raised = next(f for f in sink.faults if f.fault_code == "paper_end")
            assert raised.ticket_class is TicketClass.STORE_TASK
            assert value_of(sink.latest("printer-01"), "paper_end") is True
            printer.state.paper_end = False
            await wait_until(lambda: ("paper_end", "cleared") in sink.codes(), timeout=5)
        counters = edge.metrics().devices[0].requests
        assert counters.responses >= 8 and counters.bad_frames == 0


@pytest.mark.parametrize("echo", ["on", "auto"])
async def test_bill_jam_on_an_echoing_cctalk_bus_is_a_repair(tmp_path: Path, echo: str) -> None:
    validator = SimulatedBillValidator(address=40)
    async with PeripheralSerialServer(validator, link=tmp_path / "ttyBILL", echo=True) as server:
        edge, sink = _edge({
            "name": "bills", "transport": "cctalk", "port": str(server.link), "poll_interval_s": 0.05,
            "echo": echo, "devices": [{"id": "bill-01", "unit": 40, "profile": "generic-cctalk-bill-validator"}],
        })  # fmt: skip
        async with running(edge):
            await wait_until(lambda: any(s.online for s in sink.snapshots), timeout=5)
            validator.inject(BillEventCode.UNSAFE_JAM)
            await wait_until(lambda: ("bill_jam", "raised") in sink.codes(), timeout=5)
            jam = next(f for f in sink.faults if f.fault_code == "bill_jam")
            assert jam.ticket_class is TicketClass.REPAIR and jam.evidence["echo"] is True
            validator.credit(2)
            await wait_until(lambda: ("bill_jam", "cleared") in sink.codes(), timeout=5)
        assert server.stats.echoed > 0
        counters = edge.metrics().devices[0].requests
        assert counters.bad_frames == 0 and counters.crc_errors == 0


async def test_validator_without_echo_goes_offline_when_the_port_is_silent(tmp_path: Path) -> None:
    validator = SimulatedBillValidator(address=41)  # the edge polls 40: nobody answers
    async with PeripheralSerialServer(validator, link=tmp_path / "ttyBILL") as server:
        edge, sink = _edge({
            "name": "bills", "transport": "cctalk", "port": str(server.link), "poll_interval_s": 0.05,
            "devices": [{"id": "bill-01", "unit": 40, "profile": "generic-cctalk-bill-validator"}],
        })  # fmt: skip
        async with running(edge):
            await wait_until(lambda: ("device_offline", "raised") in sink.codes(), timeout=10)
        assert edge.metrics().devices[0].requests.timeouts >= 3


async def test_a_missing_port_is_a_link_error_and_takes_the_printer_offline(tmp_path: Path) -> None:
    edge, sink = _edge({
        "name": "printer", "transport": "escpos", "port": str(tmp_path / "ttyNONE"), "poll_interval_s": 0.05,
        "devices": [{"id": "printer-01", "unit": 1, "profile": "epson-tm-t88-escpos"}],
    })  # fmt: skip
    async with running(edge):
        await wait_until(lambda: ("device_offline", "raised") in sink.codes(), timeout=5)
    offline = next(f for f in sink.faults if f.fault_code == "device_offline")
    assert offline.evidence["error_type"] == "LinkDown"
    assert edge.metrics().devices[0].requests.link_errors >= 3
