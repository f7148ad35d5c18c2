"""A whole simulated Modbus TCP endpoint dies: the edge reports one bus_offline, not a
device_offline per device, and clears it when the endpoint is back. Real sockets, free port."""

from __future__ import annotations

import random
from collections.abc import Mapping

from device_profiles.schema import DeviceProfile
from edge.clock import SystemClock
from edge.config import BusConfig, DeviceConfig, EdgeConfig
from edge.correlation import BUS_FAULT
from edge.runtime import Edge
from edge.scheduler import SchedulerSettings
from edge.transport import TcpTransport
from edge.transport.base import Transport
from simulators.device import SimulatedDevice
from simulators.tcp_server import ModbusTcpServer
from tests.unit.edge.fakes import REGISTRY, RecordingSink, running, wait_until

UNITS = (1, 2, 3)


def simulated() -> list[SimulatedDevice]:
    return [SimulatedDevice(f"case-{u}", u, REGISTRY.get("dixell-xr75cx")) for u in UNITS]


def codes(sink: RecordingSink, code: str) -> list[tuple[str, str]]:
    return [(f.device_id, f.state.value) for f in sink.faults if f.fault_code == code]


async def test_a_dead_tcp_endpoint_is_one_bus_fault_cleared_when_it_returns() -> None:
    devices = simulated()
    server = ModbusTcpServer(devices)
    await server.__aenter__()
    port = server.port

    def factory(bus: BusConfig, profiles: Mapping[int, DeviceProfile]) -> Transport:
        return TcpTransport("127.0.0.1", port, connect_timeout=0.5, reconnect_delay=0.1, reconnect_max=0.4)

    config = EdgeConfig(buses=[BusConfig(
        name="tcp-gw-1", transport="tcp", host="127.0.0.1", tcp_port=port, poll_interval_s=0.2,
        devices=[DeviceConfig(id=f"case-{u}", unit=u, profile="dixell-xr75cx") for u in UNITS],
    )])
    sink = RecordingSink()
    edge = Edge(config, REGISTRY, sink, SystemClock(), factory,
                scheduler_settings=SchedulerSettings(backoff_max_s=0.8), rng=random.Random(1))
    try:
        async with running(edge):
            await wait_until(lambda: all(s.online for s in edge.snapshots()), timeout=10)
            await server.__aexit__(None, None, None)  # the endpoint dies with every device behind it
            await wait_until(lambda: codes(sink, BUS_FAULT) == [("tcp-gw-1", "raised")], timeout=15)
            await wait_until(lambda: not any(s.online for s in edge.snapshots()), timeout=15)
            assert codes(sink, "device_offline") == []
            raised = next(f for f in sink.faults if f.fault_code == BUS_FAULT)
            assert raised.evidence["transport"] == "tcp" and raised.evidence["endpoint"] == f"127.0.0.1:{port}"
            assert raised.evidence["devices_silent"] == 3 and "LinkDown" in str(raised.evidence["last_errors"])
            server = ModbusTcpServer(devices, port=port)  # back on the same port
            await server.__aenter__()
            await wait_until(lambda: len(codes(sink, BUS_FAULT)) == 2, timeout=15)
            await wait_until(lambda: all(s.online for s in edge.snapshots()), timeout=15)
        assert codes(sink, BUS_FAULT) == [("tcp-gw-1", "raised"), ("tcp-gw-1", "cleared")]
        assert codes(sink, "device_offline") == []
    finally:
        await server.__aexit__(None, None, None)
