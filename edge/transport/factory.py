"""Choosing and building a bus's transport from its config (edge layer)."""

from __future__ import annotations

from collections.abc import Callable, Mapping

from device_profiles.schema import DeviceProfile, SerialSettings
from edge.config import BusConfig
from edge.errors import EdgeConfigError
from edge.transport.base import Transport
from edge.transport.serial import SerialRtuTransport
from edge.transport.tcp import RtuOverTcpTransport, TcpTransport

# Builds the transport of one bus, given the profile of each unit on it.
TransportFactory = Callable[[BusConfig, Mapping[int, DeviceProfile]], Transport]


def serial_settings(bus: BusConfig, profiles: Mapping[int, DeviceProfile]) -> SerialSettings:
    """The bus's serial settings, else the one setting all its devices' profiles agree on."""
    if bus.serial is not None:
        return bus.serial
    distinct = {profile.modbus.serial for profile in profiles.values()}
    if len(distinct) != 1:
        models = ", ".join(sorted({p.model for p in profiles.values()}))
        raise EdgeConfigError(
            f"bus {bus.name!r}: its devices' profiles ({models}) disagree on serial settings; set 'serial' on the bus"
        )
    return distinct.pop()


def inter_frame_gaps(profiles: Mapping[int, DeviceProfile]) -> dict[int, float]:
    """Per unit, the extra silence its profile asks for between frames, in seconds."""
    return {unit: profile.modbus.inter_frame_gap_ms / 1000 for unit, profile in profiles.items()}


def default_transport_factory(bus: BusConfig, profiles: Mapping[int, DeviceProfile]) -> Transport:
    if bus.transport == "rtu":
        assert bus.port is not None  # BusConfig validates it
        return SerialRtuTransport(bus.port, serial_settings(bus, profiles), inter_frame_gaps=inter_frame_gaps(profiles))
    assert bus.host is not None and bus.tcp_port is not None
    if bus.transport == "rtu_over_tcp":
        return RtuOverTcpTransport(bus.host, bus.tcp_port, inter_frame_gaps=inter_frame_gaps(profiles))
    return TcpTransport(bus.host, bus.tcp_port)
