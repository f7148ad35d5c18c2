"""The local stack's configs: each demo lane gets a printer port and an echoing ccTalk line,
and both the simulator and the store configs that plan_stack writes load and agree."""

from __future__ import annotations

from pathlib import Path

from gateway.config import StoreConfig
from simulators.config import CcTalkBusSpec, SimulatorConfig
from storeguard.stack import STORE_LAYOUTS, plan_stack


def test_demo_lanes_get_a_printer_and_a_bill_validator(tmp_path: Path) -> None:
    plan = plan_stack(tmp_path, store_count=1)
    store = plan.stores[0]
    sim = SimulatorConfig.load(store.sim_config)
    config = StoreConfig.load(store.store_config)
    peripherals = {spec.id: bus for bus, spec in sim.peripheral_specs()}
    assert set(peripherals) == {"lane-01-printer", "lane-01-bills", "lane-02-printer", "lane-02-bills"}
    assert isinstance(peripherals["lane-01-bills"], CcTalkBusSpec) and peripherals["lane-01-bills"].echo
    edge_buses = {b.name: b for b in config.edge_config.buses}
    assert edge_buses["printer-lane-01"].transport == "escpos"
    assert edge_buses["bills-lane-02"].transport == "cctalk" and edge_buses["bills-lane-02"].devices[0].unit == 40
    assert {str(p) for p in store.peripheral_links} == {str(b.link) for b in peripherals.values()}
    assert {b.port for b in edge_buses.values() if b.transport in ("escpos", "cctalk")} == {
        str(p) for p in store.peripheral_links
    }


def test_layouts_without_peripherals_are_unchanged(tmp_path: Path) -> None:
    layout = {**STORE_LAYOUTS[0], "peripherals": False}
    store = plan_stack(tmp_path, store_count=1, layouts=[layout]).stores[0]
    assert store.peripheral_links == ()
    assert [b.transport for b in SimulatorConfig.load(store.sim_config).buses] == ["rtu", "tcp"]
