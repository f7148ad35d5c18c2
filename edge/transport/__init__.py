"""Transports (edge layer): one Modbus request PDU to one unit, one response PDU back."""

from edge.transport.base import Transport, check_response
from edge.transport.factory import TransportFactory, default_transport_factory, serial_settings
from edge.transport.memory import Handler, InMemoryTransport
from edge.transport.serial import SerialRtuTransport
from edge.transport.tcp import RtuOverTcpTransport, TcpTransport

__all__ = [
    "Handler",
    "InMemoryTransport",
    "RtuOverTcpTransport",
    "SerialRtuTransport",
    "TcpTransport",
    "Transport",
    "TransportFactory",
    "check_response",
    "default_transport_factory",
    "serial_settings",
]
