"""Test doubles for the gateway: an edge that calls the sink when told, builders for what the
edge hands over, and an in-memory publisher standing in for the MQTT link."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any, Self

from device_profiles import ProfileRegistry
from edge.clock import Clock
from edge.config import EdgeConfig
from edge.model import DeviceSnapshot, EdgeSink, FaultChange, PointReading
from gateway.config import StoreConfig
from gateway.errors import LinkBusy
from protocols.mqtt.messages import FaultClass, FaultState, Quality, Severity, TicketClass

T0 = datetime(2026, 3, 2, 9, 30, tzinfo=UTC)


def fault_change(device_id: str = "case-01", code: str = "high_temperature",
                 state: FaultState = FaultState.RAISED, **changes: Any) -> FaultChange:
    fields: dict[str, Any] = {
        "device_id": device_id, "device_model": "dixell-xr75cx", "fault_code": code, "state": state,
        "severity": Severity.MAJOR, "fault_class": FaultClass.FOOD_SAFETY, "ticket_class": TicketClass.REPAIR,
        "occurred_at": T0, "description": "air temperature above 8 °C for 30 min", "location": "aisle 3",
        "evidence": {"value": 9.4, "limit": 8.0},
    }
    fields.update(changes)
    return FaultChange(**fields)


def snapshot(device_id: str = "case-01", *, online: bool = True, air: float | None = 3.5,
             quality: Quality = Quality.GOOD) -> DeviceSnapshot:
    return DeviceSnapshot(
        device_id=device_id, device_model="dixell-xr75cx", location="aisle 3", online=online,
        readings=(PointReading("air_temp", air, quality, "°C"), PointReading("defrost_active", False, Quality.GOOD)),
        read_at=T0, last_ok_at=T0,
    )


class FakeEdge:
    """Satisfies gateway.edge_port.EdgeRunner. Tests drive the sink through it."""

    def __init__(self, config: EdgeConfig, registry: ProfileRegistry, sink: EdgeSink, clock: Clock,
                 restored_faults: Sequence[FaultChange] = ()) -> None:
        self.config = config
        self.registry = registry
        self.sink = sink
        self.clock = clock
        self.restored_faults = list(restored_faults)
        self.running = asyncio.Event()
        self.closed = False
        self._snapshots: dict[str, DeviceSnapshot] = {}

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        self.closed = True

    async def run(self) -> None:
        self.running.set()
        await asyncio.Event().wait()  # until cancelled, like a real bus scheduler

    def snapshots(self) -> list[DeviceSnapshot]:
        return list(self._snapshots.values())

    async def fault(self, *args: Any, **kwargs: Any) -> FaultChange:
        change = fault_change(*args, **kwargs)
        await self.sink.fault_changed(change)
        return change

    async def poll(self, snap: DeviceSnapshot) -> None:
        self._snapshots[snap.device_id] = snap
        await self.sink.device_polled(snap)


@dataclass
class FakeEdges:
    """An edge_factory that remembers the edges it built."""

    built: list[FakeEdge] = field(default_factory=list)

    def __call__(self, config: EdgeConfig, registry: ProfileRegistry, sink: EdgeSink, clock: Clock,
                 restored_faults: Sequence[FaultChange] = ()) -> FakeEdge:
        edge = FakeEdge(config, registry, sink, clock, restored_faults)
        self.built.append(edge)
        return edge

    @property
    def last(self) -> FakeEdge:
        return self.built[-1]


class FakePublisher:
    """An MQTT link in memory: records publishes, hands out message ids, can be cut."""

    def __init__(self, *, connected: bool = True, queue_limit: int | None = None) -> None:
        self.connected = connected
        self.queue_limit = queue_limit
        self.sent: list[tuple[int, str, bytes, int, bool]] = []  # (mid, topic, payload, qos, retain)
        self._mid = 0

    def publish(self, topic: str, payload: bytes, qos: int, retain: bool) -> int:
        if self.queue_limit is not None and len(self.sent) >= self.queue_limit:
            raise LinkBusy("full")
        self._mid += 1
        self.sent.append((self._mid, topic, payload, qos, retain))
        return self._mid


def store_config(tmp_path: Path, *, mqtt_url: str = "mqtt://127.0.0.1:1", **changes: Any) -> StoreConfig:
    raw: dict[str, Any] = {
        "store_id": "store-001",
        "name": "Harbour Road",
        "mqtt": {"url": mqtt_url, "reconnect_min_s": 0.1, "reconnect_max_s": 0.5, "keepalive_s": 5},
        "outbox": {"path": str(tmp_path / "store.db")},
        "http": {"host": "127.0.0.1", "port": 0},
        "telemetry_interval_s": 3600,
        "health_interval_s": 3600,
        "buses": [{
            "name": "cases", "transport": "tcp", "host": "127.0.0.1", "tcp_port": 1502,
            "devices": [{"id": "case-01", "unit": 1, "profile": "dixell-xr75cx", "location": "aisle 3"},
                        {"id": "case-02", "unit": 2, "profile": "dixell-xr75cx", "location": "aisle 4"}],
        }],
    }
    raw.update(changes)
    return StoreConfig.model_validate(raw)
