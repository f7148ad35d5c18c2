"""Store configs with serial peripherals: printer and validator ports load; a profile on the
wrong kind of bus is refused naming file, field and reason."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.config import ConfigError, StoreConfig
from tests.unit.gateway.test_config import GOOD, changed, write

PRINTER_BUS = {"name": "printer-1", "transport": "escpos", "port": "/dev/ttyS1",
               "devices": [{"id": "printer-01", "unit": 1, "profile": "epson-tm-t88-escpos"}]}  # fmt: skip
BILL_BUS = {"name": "bills-1", "transport": "cctalk", "port": "/dev/ttyS2", "echo": "on",
            "devices": [{"id": "bill-01", "unit": 40, "profile": "generic-cctalk-bill-validator"}]}  # fmt: skip


def test_peripheral_buses_load(tmp_path: Path) -> None:
    modbus_buses = list(GOOD["buses"])  # type: ignore[call-overload]
    config = StoreConfig.load(write(tmp_path, changed(buses=[*modbus_buses, PRINTER_BUS, BILL_BUS])))
    transports = [b.transport for b in config.edge_config.buses]
    assert transports == ["rtu", "escpos", "cctalk"]


def test_a_printer_profile_on_a_modbus_bus_is_refused(tmp_path: Path) -> None:
    bus = {**GOOD["buses"][0], "devices": [{"id": "p", "unit": 1, "profile": "epson-tm-t88-escpos"}]}  # type: ignore[index]
    with pytest.raises(ConfigError, match=r"buses\.0\.devices\.0\.profile.*speaks escpos, not modbus"):
        StoreConfig.load(write(tmp_path, changed(buses=[bus])))
