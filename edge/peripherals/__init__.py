"""Serial POS peripherals (edge layer): ESC/POS receipt printers and ccTalk bill validators.

A byte transport (pyserial, or in memory for tests) carries one request and its reply at a
time; a poller per protocol turns replies into conditions through the pure codecs in
``protocols``; a ``PeripheralDevice`` turns conditions into readings and fault changes with
the profile's delays, and goes offline after K failed polls like a Modbus device.
"""

from edge.peripherals.bus import PeripheralBus, PeripheralTransportFactory, build_peripheral_bus, default_byte_transport
from edge.peripherals.cctalk import CcTalkPoller
from edge.peripherals.device import PeripheralDevice, PollResult
from edge.peripherals.errors import Nak
from edge.peripherals.escpos import EscPosPoller
from edge.peripherals.serial import SerialByteTransport
from edge.peripherals.transport import ByteHandler, ByteTransport, InMemoryByteTransport, ReplyLength

__all__ = [
    "ByteHandler",
    "ByteTransport",
    "CcTalkPoller",
    "EscPosPoller",
    "InMemoryByteTransport",
    "Nak",
    "PeripheralBus",
    "PeripheralDevice",
    "PeripheralTransportFactory",
    "PollResult",
    "ReplyLength",
    "SerialByteTransport",
    "build_peripheral_bus",
    "default_byte_transport",
]
