"""Byte-accurate serial peripherals (simulators layer): an ESC/POS printer and a ccTalk bill
validator, each a pure `handle(request) -> bytes`, served on a pty by PeripheralSerialServer.
"""

from simulators.peripherals.cctalk_validator import SimulatedBillValidator
from simulators.peripherals.escpos_printer import PrinterState, SimulatedPrinter
from simulators.peripherals.serial_server import PeripheralSerialServer, PeripheralStats, SerialPeripheral

__all__ = [
    "PeripheralSerialServer",
    "PeripheralStats",
    "PrinterState",
    "SerialPeripheral",
    "SimulatedBillValidator",
    "SimulatedPrinter",
]
