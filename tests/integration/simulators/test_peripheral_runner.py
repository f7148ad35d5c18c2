"""Simulators serving a printer and an echoing ccTalk line on ptys, polled by the real edge:
scenario and injected faults become store tasks and repairs, and clear again."""

from __future__ import annotations

import asyncio
from pathlib import Path

import aiohttp

from edge.clock import SystemClock
from edge.config import BusConfig, EdgeConfig
from edge.runtime import Edge
from protocols.mqtt.messages import TicketClass
from simulators.config import SimulatorConfig
from simulators.runner import Simulators, run_simulators
from tests.unit.edge.fakes import REGISTRY, RecordingSink, running, wait_until

CONFIG = """\
tick_s: 0.05
control: {host: 127.0.0.1, port: 0}
buses:
  - name: printer-1
    transport: escpos
    link: run/ttyPRINTER
    devices: [{id: printer-01, profile: epson-tm-t88-escpos}]
  - name: bills-1
    transport: cctalk
    link: run/ttyBILL
    echo: true
    devices: [{id: bill-01, unit: 40, profile: generic-cctalk-bill-validator}]
scenario:
  - {at_s: 0.3, device: printer-01, fault: paper_near_end, duration_s: 0.5}
"""


def edge_config(printer: Path, bills: Path) -> EdgeConfig:
    return EdgeConfig(buses=[
        BusConfig.model_validate({
            "name": "printer-1", "transport": "escpos", "port": str(printer), "poll_interval_s": 0.05,
            "devices": [{"id": "printer-01", "unit": 1, "profile": "epson-tm-t88-escpos",
                         "rules": {"paper_near_end": {"clear_delay_s": 0}}}]}),
        BusConfig.model_validate({
            "name": "bills-1", "transport": "cctalk", "port": str(bills), "poll_interval_s": 0.05, "echo": "auto",
            "devices": [{"id": "bill-01", "unit": 40, "profile": "generic-cctalk-bill-validator"}]}),
    ])  # fmt: skip


async def test_scenario_and_control_api_faults_reach_the_edge(tmp_path: Path) -> None:
    (tmp_path / "sim.yaml").write_text(CONFIG, encoding="utf-8")
    config = SimulatorConfig.load(tmp_path / "sim.yaml")
    ready = asyncio.Event()
    handles: list[Simulators] = []
    task = asyncio.create_task(run_simulators(config, ready=ready, on_ready=handles.append))
    try:
        async with asyncio.timeout(5):
            await ready.wait()
        sims = handles[0]
        links = {name: server.link for name, server in sims.peripheral_servers.items()}
        sink = RecordingSink()
        edge = Edge(edge_config(links["printer-1"], links["bills-1"]), REGISTRY, sink, SystemClock())
        async with running(edge):
            await wait_until(lambda: ("paper_near_end", "cleared") in sink.codes("printer-01"), timeout=10)
            raised = next(f for f in sink.faults if f.fault_code == "paper_near_end")
            assert raised.ticket_class is TicketClass.STORE_TASK

            async with aiohttp.ClientSession() as http:
                url = f"{sims.control_url}/devices/bill-01/faults"
                async with http.post(url, json={"fault": "bill_jam"}) as response:
                    assert response.status == 201
                await wait_until(lambda: ("bill_jam", "raised") in sink.codes("bill-01"), timeout=10)
                assert next(f for f in sink.faults if f.fault_code == "bill_jam").ticket_class is TicketClass.REPAIR
                async with http.delete(f"{url}/bill_jam") as response:
                    assert response.status == 200
                await wait_until(lambda: ("bill_jam", "cleared") in sink.codes("bill-01"), timeout=10)

            sims.inject("bill-01", "stacker_full")
            await wait_until(lambda: ("stacker_full", "raised") in sink.codes("bill-01"), timeout=10)
            assert next(f for f in sink.faults if f.fault_code == "stacker_full").ticket_class is TicketClass.STORE_TASK
            sims.inject("printer-01", "offline")
            await wait_until(lambda: ("device_offline", "raised") in sink.codes("printer-01"), timeout=10)
        assert sims.peripheral_servers["bills-1"].stats.echoed > 0
        assert edge.metrics().devices[1].requests.bad_frames == 0
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    assert not (tmp_path / "run" / "ttyPRINTER").exists()
