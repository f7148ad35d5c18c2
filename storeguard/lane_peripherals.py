"""Each self-checkout lane's serial peripherals in a local stack (composition layer).

A demo layout with `"peripherals": True` gets, per lane, a receipt printer on its own
ESC/POS port and a bill validator on an echoing ccTalk line, both simulated on ptys next to
the store's other links; the store config polls them on `escpos` and `cctalk` buses.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

PRINTER_PROFILE = "epson-tm-t88-escpos"
VALIDATOR_PROFILE = "generic-cctalk-bill-validator"
VALIDATOR_ADDRESS = 40


def peripheral_lanes(layout: dict[str, Any]) -> list[tuple[str, int, str]]:
    """The lanes whose printer and bill validator are simulated on their own serial ports."""
    return list(layout["lanes"]) if layout.get("peripherals") else []


def lane_links(store_dir: Path, lane: str) -> tuple[Path, Path]:
    return store_dir / f"ttyPRN-{lane}", store_dir / f"ttyBILL-{lane}"


def peripheral_buses(
    store_dir: Path, layout: dict[str, Any], poll_interval_s: float, printer_rules: dict[str, Any]
) -> tuple[list[Any], list[Any]]:
    """(simulator buses, store buses) for each lane's printer and bill validator; ccTalk echoes."""
    sim: list[Any] = []
    store: list[Any] = []
    for lane, _, location in peripheral_lanes(layout):
        printer, bills = lane_links(store_dir, lane)
        sim.append({"name": f"printer-{lane}", "transport": "escpos", "link": str(printer),
                    "devices": [{"id": f"{lane}-printer", "unit": 1, "profile": PRINTER_PROFILE}]})
        sim.append({"name": f"bills-{lane}", "transport": "cctalk", "link": str(bills), "echo": True,
                    "devices": [{"id": f"{lane}-bills", "unit": VALIDATOR_ADDRESS, "profile": VALIDATOR_PROFILE}]})
        store.append({"name": f"printer-{lane}", "transport": "escpos", "port": str(printer),
                      "poll_interval_s": poll_interval_s,
                      "devices": [{"id": f"{lane}-printer", "unit": 1, "profile": PRINTER_PROFILE,
                                   "location": f"{location}, receipt printer", "rules": printer_rules}]})
        store.append({"name": f"bills-{lane}", "transport": "cctalk", "port": str(bills), "echo": "auto",
                      "poll_interval_s": poll_interval_s,
                      "devices": [{"id": f"{lane}-bills", "unit": VALIDATOR_ADDRESS, "profile": VALIDATOR_PROFILE,
                                   "location": f"{location}, bill validator"}]})
    return sim, store
