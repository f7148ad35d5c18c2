"""What the store page shows (gateway layer): the HTTP response models and their assembly.

`StoreView` reads the gateway's parts at request time; the web layer only serialises.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict

from edge.clock import Clock
from edge.metrics import EdgeMetrics
from edge.model import DeviceSnapshot
from gateway.config import StoreConfig
from gateway.desired_config import ConfigStatusOut
from gateway.exposition import MetricsSnapshot, render_metrics
from gateway.metrics import GatewayMetrics
from gateway.mqtt import LinkStatus
from gateway.outbox import Outbox
from gateway.sender import OutboxSender
from gateway.sink import StoreSink
from gateway.tickets import TicketBook, TicketView
from protocols.mqtt.messages import FaultEvent, TicketStatusValue

CLOSED = {TicketStatusValue.CLOSED, TicketStatusValue.CANCELLED}


class _Out(BaseModel):
    model_config = ConfigDict(frozen=True)


class StoreOut(_Out):
    id: str
    name: str


class LinkOut(_Out):
    connected: bool
    broker: str
    since: datetime | None
    last_contact_at: datetime | None


class OutboxOut(_Out):
    depth: int
    bytes: int
    oldest_age_s: float
    in_flight: int
    by_kind: dict[str, int]


class ReadingOut(_Out):
    point: str
    value: float | int | bool | str | None
    quality: str
    unit: str
    detail: str = ""


class DeviceOut(_Out):
    id: str
    model: str
    bus: str
    location: str
    online: bool | None  # None: not polled yet
    read_at: datetime | None
    last_ok_at: datetime | None
    readings: list[ReadingOut]


class FaultOut(_Out):
    event: dict[str, Any]  # the FaultEvent as sent
    ticket: dict[str, Any] | None  # its ticket's latest status, when central has sent one


class StateOut(_Out):
    store: StoreOut
    generated_at: datetime
    mqtt: LinkOut
    outbox: OutboxOut
    devices: list[DeviceOut]
    open_faults: list[FaultOut]
    tickets: list[dict[str, Any]]
    config: ConfigStatusOut | None = None  # the desired config from central this store runs


def ticket_json(view: TicketView) -> dict[str, Any]:
    """The latest TicketStatus as JSON plus `statuses_received` in arrival order (GET /api/tickets)."""
    return {
        **view.status.model_dump(mode="json"),
        "statuses_received": list(view.statuses_received),
        "received": [
            {"version": r.version, "status": r.status, "changed_at": r.changed_at, "received_at": r.received_at}
            for r in view.receipts
        ],
    }


class StoreView:
    def __init__(self, *, config: StoreConfig, sink: StoreSink, outbox: Outbox, sender: OutboxSender,
                 tickets: TicketBook, metrics: GatewayMetrics, link: Callable[[], LinkStatus],
                 edge_metrics: Callable[[], EdgeMetrics | None], clock: Clock,
                 config_status: Callable[[], ConfigStatusOut] | None = None) -> None:
        self._config = config
        self._sink = sink
        self._outbox = outbox
        self._sender = sender
        self._tickets = tickets
        self._metrics = metrics
        self._link = link
        self._edge_metrics = edge_metrics
        self._clock = clock
        self._config_status = config_status

    def tickets(self) -> list[dict[str, Any]]:
        return [ticket_json(view) for view in self._tickets.tickets()]

    def state(self) -> StateOut:
        link = self._link()
        tickets = self._tickets.tickets()
        stats = self._outbox.stats()
        return StateOut(
            store=StoreOut(id=self._config.store_id, name=self._config.name),
            generated_at=self._clock.now(),
            mqtt=LinkOut(connected=link.connected, broker=link.broker, since=link.since,
                         last_contact_at=link.last_contact_at),
            outbox=OutboxOut(depth=stats.depth, bytes=stats.bytes, oldest_age_s=self._age(stats.oldest_created_at),
                             in_flight=self._sender.in_flight, by_kind={k.value: v for k, v in stats.rows.items()}),
            devices=self._devices(),
            open_faults=[FaultOut(event=f.model_dump(mode="json"), ticket=_ticket_for(f, tickets))
                         for f in self._sink.open_faults.list()],
            tickets=[{**ticket_json(t), "closed": t.status.status in CLOSED} for t in tickets],
            config=self._config_status() if self._config_status is not None else None,
        )

    def metrics_text(self) -> str:
        stats = self._outbox.stats()
        devices = self._devices()
        return render_metrics(MetricsSnapshot(
            metrics=self._metrics, link=self._link(), outbox=stats, outbox_max_bytes=self._config.outbox.max_bytes,
            oldest_age_s=self._age(stats.oldest_created_at), drops=self._outbox.drops(),
            over_budget=self._outbox.over_budget(), in_flight=self._sender.in_flight,
            next_seq=self._outbox.peek_seq(), open_faults=len(self._sink.open_faults.list()),
            tickets=len(self._tickets.tickets()),
            devices=Counter("unknown" if d.online is None else "online" if d.online else "offline" for d in devices),
            edge=self._edge_metrics(),
        ))

    def _devices(self) -> list[DeviceOut]:
        polled = {s.device_id: s for s in self._sink.snapshots()}
        return [
            _device(bus.name, device.id, device.profile, device.location, polled.get(device.id))
            for bus in self._config.buses for device in bus.devices
        ]

    def _age(self, created_at: float | None) -> float:
        return 0.0 if created_at is None else max(0.0, self._clock.now().timestamp() - created_at)


def _device(bus: str, device_id: str, profile: str, location: str, snap: DeviceSnapshot | None) -> DeviceOut:
    if snap is None:
        return DeviceOut(id=device_id, model=profile, bus=bus, location=location, online=None, read_at=None,
                         last_ok_at=None, readings=[])
    return DeviceOut(
        id=device_id, model=snap.device_model, bus=bus, location=snap.location or location, online=snap.online,
        read_at=snap.read_at, last_ok_at=snap.last_ok_at,
        readings=[ReadingOut(point=r.point, value=r.value, quality=r.quality.value, unit=r.unit,
                             detail=r.detail) for r in snap.readings],
    )


def _ticket_for(fault: FaultEvent, tickets: list[TicketView]) -> dict[str, Any] | None:
    """The newest ticket of the same device and fault code, preferring one still open."""
    mine = [t for t in tickets if t.status.device_id == fault.device_id and t.status.fault_code == fault.fault_code]
    if not mine:
        return None
    best = max(mine, key=lambda t: (t.status.status not in CLOSED, t.status.ticket_id))
    return ticket_json(best)

