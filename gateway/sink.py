"""The gateway's EdgeSink (gateway layer): edge output -> contract messages in the outbox.

Fault changes become FaultEvents stamped with the store id, the next sequence number and a
fresh message id, committed (synchronous=FULL) together with the open-fault table before
the sender sees them. Device snapshots are kept as the latest state; the telemetry timers
turn them into one TelemetryBatch per bus per interval (each right after that bus's fresh
poll cycle), and the health timer into a retained StoreHealth.
"""

from __future__ import annotations

import asyncio
import functools
import importlib.metadata
import logging
import math
from collections.abc import Callable, Iterable, Mapping

import pydantic_core
from pydantic import ValidationError

from edge.clock import Clock
from edge.model import DeviceSnapshot, FaultChange
from gateway.errors import StorageError
from gateway.metrics import GatewayMetrics
from gateway.outbox import Outbox, OutboxKind
from gateway.storage import StoreDatabase
from protocols.mqtt.messages import (
    MAX_BATCH_POINTS,
    DeviceHealth,
    FaultEvent,
    FaultState,
    Quality,
    StoreHealth,
    TelemetryBatch,
    TelemetryPoint,
)
from protocols.mqtt.topics import TopicKind, topic

log = logging.getLogger(__name__)

UNASSIGNED = ""  # the telemetry group of a device on no configured bus (a fake edge's, in tests)


@functools.cache
def gateway_version() -> str:
    try:
        return importlib.metadata.version("storeguard")[:32]
    except importlib.metadata.PackageNotFoundError:
        return ""


class OpenFaults:
    """Faults raised and not yet cleared, persisted so the store page and the edge's rule state
    survive a restart. Written in the same transaction as the fault's outbox row."""

    def __init__(self, db: StoreDatabase) -> None:
        self._db = db

    def apply(self, event: FaultEvent) -> None:
        if event.state is FaultState.CLEARED:
            self._db.execute("DELETE FROM open_faults WHERE device_id = ? AND fault_code = ?",
                             (event.device_id, event.fault_code))
        else:
            self._db.execute(
                "INSERT INTO open_faults (device_id, fault_code, event) VALUES (?, ?, ?)"
                " ON CONFLICT(device_id, fault_code) DO UPDATE SET event = excluded.event",
                (event.device_id, event.fault_code, event.model_dump_json()),
            )

    def restore(self) -> list[FaultChange]:
        """The open faults as the edge's changes, for the edge to resume at start.

        A row the contract no longer accepts is skipped (logged): it must not stop the store."""
        changes: list[FaultChange] = []
        unreadable: list[str] = []
        rows = self._db.execute("SELECT device_id, fault_code, event FROM open_faults ORDER BY device_id, fault_code")
        for device_id, fault_code, raw in rows:
            try:
                event = FaultEvent.model_validate_json(raw)
            except ValidationError:
                unreadable.append(f"{device_id}/{fault_code}")
                continue
            changes.append(_fault_change(event))
        if unreadable:
            log.error("open faults not resumed (unreadable rows in the store database): %s", ", ".join(unreadable))
        return changes

    def list(self) -> list[FaultEvent]:
        rows = self._db.execute("SELECT event FROM open_faults ORDER BY device_id, fault_code")
        return [FaultEvent.model_validate_json(event) for (event,) in rows]


class StoreSink:
    """Implements edge.model.EdgeSink for one store."""

    def __init__(self, *, store_id: str, db: StoreDatabase, outbox: Outbox, clock: Clock,
                 metrics: GatewayMetrics, on_enqueued: Callable[[], None] = lambda: None,
                 store_name: str = "", buses: Mapping[str, Iterable[str]] | None = None) -> None:
        self._store_id = store_id
        self._store_name = store_name
        # Telemetry groups: bus name -> its device ids (sorted, as in a batch); a device on none is in UNASSIGNED.
        self._members = {bus: sorted(devices) for bus, devices in (buses or {}).items() if bus != UNASSIGNED}
        self._bus_of = {device_id: bus for bus, devices in self._members.items() for device_id in devices}
        self._waiting: dict[str, str] = {}  # online device -> its group, not yet polled in the group's window
        self._left: dict[str, int] = {}  # per group with a window open: devices still awaited
        self._cycle_done: dict[str, asyncio.Event] = {}  # per group: every awaited device polled
        self._db = db
        self._outbox = outbox
        self._clock = clock
        self._metrics = metrics
        self._on_enqueued = on_enqueued
        self._snapshots: dict[str, DeviceSnapshot] = {}
        self.open_faults = OpenFaults(db)
        self._topics = {kind: topic(store_id, kind) for kind in TopicKind}
        self._warned_invalid = False
        self._points = _TelemetryPoints()

    # -- EdgeSink ---------------------------------------------------------------------
    async def fault_changed(self, change: FaultChange) -> None:
        """On disk (durably) before this returns; raises StorageError when it can't be."""
        try:
            with self._db.transaction(durable=True):
                event = self._fault_event(change, self._outbox.allocate_seq())
                self._outbox.put(OutboxKind.FAULT, self._topics[TopicKind.FAULT], event.to_bytes(), qos=1)
                self.open_faults.apply(event)
        except ValidationError as exc:
            self._metrics.fault_events_invalid += 1
            if not self._warned_invalid:
                self._warned_invalid = True
                log.error("edge handed a fault change the contract refuses (%s %s): %s; counted from now on",
                          change.device_id, change.fault_code, exc.errors()[0]["msg"])
            return
        except StorageError:
            log.exception("fault event %s/%s could not be stored", change.device_id, change.fault_code)
            raise
        self._metrics.fault_events[event.state.value] += 1
        self._on_enqueued()

    async def device_polled(self, snapshot: DeviceSnapshot) -> None:
        self._snapshots[snapshot.device_id] = snapshot
        if self._waiting:  # O(1) per poll: this is the polling hot path
            group = self._waiting.pop(snapshot.device_id, None)
            if group is not None:
                left = self._left[group] = self._left[group] - 1
                if not left:
                    self._cycle_done[group].set()

    # -- telemetry freshness ----------------------------------------------------------
    # One batch per bus per interval, built right after every live device of the bus has been
    # polled again, so the batch carries values one poll cycle old at most, not one interval.
    def group_of(self, device_id: str) -> str:
        """The telemetry group of a device: its bus, or UNASSIGNED."""
        return self._bus_of.get(device_id, UNASSIGNED)

    def has_snapshots(self, group: str) -> bool:
        """Whether any device of ``group`` has reported yet."""
        return any(d in self._snapshots for d in self._group_ids(group))

    def open_cycle_window(self, group: str) -> None:
        """Start waiting for a fresh poll of every device of ``group`` that is online now."""
        waiting, snapshots, left = self._waiting, self._snapshots, 0
        for device_id in self._group_ids(group):
            snapshot = snapshots.get(device_id)
            if snapshot is not None and snapshot.online:
                waiting[device_id] = group
                left += 1
            elif waiting.get(device_id) == group:
                del waiting[device_id]  # the group's last window ends
        self._left[group] = left
        self._cycle_done.setdefault(group, asyncio.Event()).clear()  # none online: not set, the deadline rules

    async def wait_for_fresh_cycle(self, group: str) -> None:
        """Return once every device of ``group`` online at open_cycle_window() has been polled since."""
        await self._cycle_done.setdefault(group, asyncio.Event()).wait()

    # -- state ------------------------------------------------------------------------
    def seed(self, snapshots: list[DeviceSnapshot]) -> None:
        """Start from the edge's view (e.g. right after it started), without overwriting newer polls."""
        for snapshot in snapshots:
            self._snapshots.setdefault(snapshot.device_id, snapshot)

    def snapshots(self) -> list[DeviceSnapshot]:
        return [self._snapshots[k] for k in sorted(self._snapshots)]

    # -- timers -----------------------------------------------------------------------
    def emit_telemetry(self, group: str | None = None) -> int:
        """Queue the TelemetryBatch of one group's devices (a bus; None: the whole store), QoS 1,
        lowest priority; returns the points sent.

        A group with more than the contract's MAX_BATCH_POINTS sends several batches."""
        if group is None:
            snapshots = self.snapshots()
        else:
            snapshots = [self._snapshots[d] for d in self._group_ids(group) if d in self._snapshots]
        points = [point for snapshot in snapshots for point in self._points.of(snapshot, self._metrics)]
        taken_at = self._clock.now()
        for start in range(0, len(points), MAX_BATCH_POINTS):  # one batch, unless the store is huge
            chunk = points[start:start + MAX_BATCH_POINTS]
            with self._db.transaction():
                header = TelemetryBatch(store_id=self._store_id, seq=self._outbox.allocate_seq(),
                                        taken_at=taken_at, points=[])
                self._outbox.put(OutboxKind.TELEMETRY, self._topics[TopicKind.TELEMETRY],
                                 _batch_bytes(header, chunk), qos=1)
            self._metrics.telemetry_batches += 1
        if points:
            self._on_enqueued()
        return len(points)

    def _group_ids(self, group: str) -> list[str]:
        """The device ids of ``group``, sorted: a bus's from the config, UNASSIGNED's as they report."""
        if group == UNASSIGNED:
            return sorted(d for d in self._snapshots if d not in self._bus_of)
        return self._members.get(group, [])

    def health(self, *, online: bool) -> StoreHealth:
        devices = [
            DeviceHealth(device_id=s.device_id, device_model=s.device_model, online=s.online,
                         location=s.location[:200], last_ok_at=s.last_ok_at)
            for s in self.snapshots()
        ] if online else []
        return StoreHealth(store_id=self._store_id, name=self._store_name[:200], online=online,
                           gateway_version=gateway_version(),
                           devices=devices, sent_at=self._clock.now())

    def emit_health(self) -> None:
        """Queue the retained StoreHealth(online=true), replacing any older unsent one."""
        payload = self.health(online=True).to_bytes()
        self._outbox.put(OutboxKind.HEALTH, self._topics[TopicKind.HEALTH], payload, qos=1, retain=True,
                         supersede=True)
        self._metrics.health_messages += 1
        self._on_enqueued()

    def _fault_event(self, change: FaultChange, seq: int) -> FaultEvent:
        return FaultEvent(
            store_id=self._store_id, seq=seq, sent_at=self._clock.now(),
            device_id=change.device_id, device_model=change.device_model, fault_code=change.fault_code,
            state=change.state, severity=change.severity, fault_class=change.fault_class,
            ticket_class=change.ticket_class, occurred_at=change.occurred_at,
            description=change.description[:500], location=change.location[:200], evidence=dict(change.evidence),
        )


def _fault_change(event: FaultEvent) -> FaultChange:
    return FaultChange(
        device_id=event.device_id, device_model=event.device_model, fault_code=event.fault_code,
        state=event.state, severity=event.severity, fault_class=event.fault_class,
        ticket_class=event.ticket_class, occurred_at=event.occurred_at, description=event.description,
        location=event.location, evidence=dict(event.evidence),
    )


class _TelemetryPoints:
    """Snapshots -> TelemetryPoint fields, checked against the contract without a pydantic model per
    point on every batch: device id, point name and unit are validated (by TelemetryPoint itself) the
    first time they are seen, the value on every batch by type. Whatever the fast check does not
    vouch for goes through TelemetryPoint validation, as every point did before."""

    def __init__(self) -> None:
        self._checked: set[tuple[str, str, str]] = set()  # (device_id, point, unit) the contract accepts

    def of(self, snapshot: DeviceSnapshot, metrics: GatewayMetrics) -> list[dict[str, object]]:
        """A device that is not answering reports every point as stale with no value."""
        points: list[dict[str, object]] = []
        online, device_id, checked = snapshot.online, snapshot.device_id, self._checked
        plain, quality_json, isfinite = _PLAIN_VALUES, _QUALITY_JSON, math.isfinite  # locals: once per point
        for r in snapshot.readings:
            value, quality = (r.value, r.quality) if online else (None, Quality.STALE)
            kind = type(value)
            if (kind in plain or (type(value) is float and isfinite(value))) and type(quality) is Quality and (
                    device_id, r.point, r.unit) in checked:
                points.append({"device_id": device_id, "point": r.point, "value": value,
                               "quality": quality_json[quality], "unit": r.unit})
                continue
            try:
                point = TelemetryPoint(device_id=device_id, point=r.point, value=value, quality=quality, unit=r.unit)
            except ValidationError:
                metrics.telemetry_points_invalid += 1
                continue
            checked.add((device_id, r.point, r.unit))
            points.append(point.model_dump())
        return points


_PLAIN_VALUES = frozenset({int, bool, str, type(None)})  # float: only when finite (allow_inf_nan=False)
_QUALITY_JSON = {quality: quality.value for quality in Quality}  # a plain str serialises without enum lookups
_EMPTY_POINTS = b'"points":[]}'


def _batch_bytes(header: TelemetryBatch, points: list[dict[str, object]]) -> bytes:
    """The JSON of ``header`` carrying ``points``: byte for byte TelemetryBatch(points=...).to_bytes(),
    serialised in one call (``points`` is the model's last field, so its JSON ends the message)."""
    head = header.to_bytes()
    if not head.endswith(_EMPTY_POINTS):  # the field order changed: take the model's own way
        full = header.model_copy(update={"points": [TelemetryPoint.model_validate(p) for p in points]})
        return full.to_bytes()
    return head[: -len(b"[]}")] + pydantic_core.to_json(points) + b"}"
