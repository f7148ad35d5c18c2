"""The EdgeSink: fault changes become sequenced FaultEvents on disk; snapshots become telemetry and health."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from edge.clock import FakeClock
from edge.model import PointReading
from gateway.errors import StorageError
from gateway.metrics import GatewayMetrics
from gateway.outbox import Outbox, OutboxKind
from gateway.sink import UNASSIGNED, StoreSink
from gateway.storage import StoreDatabase
from protocols.mqtt.messages import (
    MAX_BATCH_POINTS,
    MAX_PAYLOAD_BYTES,
    FaultEvent,
    FaultState,
    Quality,
    StoreHealth,
    TelemetryBatch,
    parse_message,
)
from tests.unit.gateway.fakes import fault_change, snapshot


class Parts:
    def __init__(self, path: Path) -> None:
        self.clock = FakeClock()
        self.db = StoreDatabase.open(path)
        self.outbox = Outbox(self.db, max_bytes=1_000_000, max_age_s=3600, clock=self.clock)
        self.metrics = GatewayMetrics()
        self.wakes = 0
        self.sink = StoreSink(store_id="store-001", store_name="Harbour Road", db=self.db, outbox=self.outbox, clock=self.clock,
                              metrics=self.metrics, on_enqueued=self._woken)

    def _woken(self) -> None:
        self.wakes += 1

    def messages(self, kind: OutboxKind | None = None) -> list[object]:
        return [parse_message(r.topic, r.payload) for r in self.outbox.pending(1000) if kind in (None, r.kind)]


@pytest.fixture
def parts(tmp_path: Path) -> Iterator[Parts]:
    p = Parts(tmp_path / "store.db")
    yield p
    p.db.close()


async def test_fault_changes_become_sequenced_contract_events(parts: Parts) -> None:
    await parts.sink.fault_changed(fault_change())
    await parts.sink.fault_changed(fault_change(state=FaultState.CLEARED))
    events = parts.messages(OutboxKind.FAULT)
    assert all(isinstance(e, FaultEvent) for e in events)
    raised, cleared = events
    assert isinstance(raised, FaultEvent) and isinstance(cleared, FaultEvent)
    assert (raised.seq, cleared.seq) == (0, 1)
    assert raised.message_id != cleared.message_id
    assert raised.store_id == "store-001"
    assert raised.evidence == {"value": 9.4, "limit": 8.0}
    assert (raised.device_id, raised.fault_code, raised.location) == ("case-01", "high_temperature", "aisle 3")
    assert [r.qos for r in parts.outbox.pending(10)] == [1, 1]
    assert parts.wakes == 2
    assert parts.metrics.fault_events == {"raised": 1, "cleared": 1}


async def test_open_faults_follow_raise_and_clear_and_persist(tmp_path: Path) -> None:
    parts = Parts(tmp_path / "store.db")
    await parts.sink.fault_changed(fault_change("case-01"))
    await parts.sink.fault_changed(fault_change("case-02", code="door_open"))
    await parts.sink.fault_changed(fault_change("case-01", state=FaultState.CLEARED))
    assert [(f.device_id, f.fault_code) for f in parts.sink.open_faults.list()] == [("case-02", "door_open")]
    parts.db.close()
    reopened = Parts(tmp_path / "store.db")
    assert [f.device_id for f in reopened.sink.open_faults.list()] == ["case-02"]
    assert reopened.outbox.peek_seq() == 3
    reopened.db.close()


async def test_open_faults_are_restored_as_the_edge_raised_them(parts: Parts, caplog: pytest.LogCaptureFixture) -> None:
    temperature = fault_change("case-01")
    offline = fault_change("case-02", code="device_offline", evidence={"failures": 3, "last_ok_at": None})
    for change in (temperature, offline):
        await parts.sink.fault_changed(change)
    parts.db.execute("INSERT INTO open_faults (device_id, fault_code, event) VALUES ('case-03', 'door_open', '{}')")
    assert parts.sink.open_faults.restore() == [temperature, offline]  # the unreadable row is skipped, logged
    assert "case-03/door_open" in caplog.text


async def test_an_open_fault_that_cannot_be_recorded_takes_its_outbox_row_with_it(parts: Parts) -> None:
    parts.db.execute("DROP TABLE open_faults")
    with pytest.raises(StorageError):
        await parts.sink.fault_changed(fault_change())
    assert parts.outbox.stats().depth == 0 and parts.outbox.peek_seq() == 0  # one transaction, rolled back


async def test_a_fault_the_contract_refuses_is_counted_not_raised(parts: Parts) -> None:
    await parts.sink.fault_changed(fault_change(fault_code="Bad Code!"))
    assert parts.metrics.fault_events_invalid == 1
    assert parts.outbox.stats().depth == 0
    assert parts.outbox.peek_seq() == 0  # the transaction rolled back


async def test_long_texts_are_trimmed_to_the_contract(parts: Parts) -> None:
    await parts.sink.fault_changed(fault_change(description="x" * 900, location="y" * 300))
    [event] = parts.messages()
    assert isinstance(event, FaultEvent) and len(event.description) == 500 and len(event.location) == 200


async def test_one_telemetry_batch_per_cycle_with_every_point_of_every_device(parts: Parts) -> None:
    assert parts.sink.emit_telemetry() == 0  # nothing polled yet: nothing sent
    await parts.sink.device_polled(snapshot("case-01", air=3.5))
    await parts.sink.device_polled(snapshot("case-02", air=None, quality=Quality.BAD))
    await parts.sink.device_polled(snapshot("case-03", online=False))
    await parts.sink.device_polled(snapshot("case-01", air=3.9))  # latest state wins
    assert parts.sink.emit_telemetry() == 6
    [batch] = parts.messages(OutboxKind.TELEMETRY)
    assert isinstance(batch, TelemetryBatch)
    points = {(p.device_id, p.point): (p.value, p.quality) for p in batch.points}
    assert points[("case-01", "air_temp")] == (3.9, Quality.GOOD)
    assert points[("case-02", "air_temp")] == (None, Quality.BAD)
    assert points[("case-03", "air_temp")] == (None, Quality.STALE)
    assert points[("case-03", "defrost_active")] == (None, Quality.STALE)
    [row] = parts.outbox.pending(10)
    assert (row.qos, row.retain, row.kind) == (1, False, OutboxKind.TELEMETRY)
    assert batch.seq == 0 and parts.metrics.telemetry_batches == 1


async def test_a_store_beyond_the_batch_limit_sends_several_batches_in_one_cycle(parts: Parts) -> None:
    many = snapshot("case-01")
    readings = tuple(PointReading(f"p{i}", float(i), Quality.GOOD) for i in range(MAX_BATCH_POINTS + 1))
    await parts.sink.device_polled(replace(many, readings=readings))
    assert parts.sink.emit_telemetry() == MAX_BATCH_POINTS + 1
    batches = parts.messages(OutboxKind.TELEMETRY)
    assert [len(b.points) for b in batches if isinstance(b, TelemetryBatch)] == [MAX_BATCH_POINTS, 1]
    assert max(len(r.payload) for r in parts.outbox.pending(10)) < MAX_PAYLOAD_BYTES


async def test_health_lists_devices_and_replaces_older_unsent_health(parts: Parts) -> None:
    await parts.sink.device_polled(snapshot("case-01"))
    await parts.sink.device_polled(snapshot("case-02", online=False))
    parts.sink.emit_health()
    parts.sink.emit_health()
    [health] = parts.messages(OutboxKind.HEALTH)
    assert isinstance(health, StoreHealth) and health.online
    assert health.name == "Harbour Road"  # central learns the store's display name from it
    assert [(d.device_id, d.online) for d in health.devices] == [("case-01", True), ("case-02", False)]
    [row] = parts.outbox.pending(10)
    assert row.retain and row.qos == 1
    offline = json.loads(parts.sink.health(online=False).to_bytes())
    assert offline["online"] is False and offline["devices"] == []


async def test_seed_takes_the_edge_view_without_overwriting_newer_polls(parts: Parts) -> None:
    await parts.sink.device_polled(snapshot("case-01", air=5.0))
    parts.sink.seed([snapshot("case-01", air=1.0), snapshot("case-02")])
    assert [(s.device_id, s.readings[0].value) for s in parts.sink.snapshots()] == [("case-01", 5.0), ("case-02", 3.5)]


async def test_telemetry_bytes_are_the_contract_models_own(parts: Parts) -> None:
    """The batch is serialised without a pydantic model per point; its bytes must be exactly those of
    TelemetryBatch(points=[TelemetryPoint(...)]).to_bytes(), and bad values are still refused."""
    values = [15.3, -0.0, 1e16, 1e-7, 2**63, True, "door_open", 'q"\\é', None, float("nan"), float("inf")]
    readings = tuple(PointReading(f"p{i}", v, Quality.GOOD, "°C") for i, v in enumerate(values))
    await parts.sink.device_polled(replace(snapshot("case-01"), readings=readings))
    await parts.sink.device_polled(snapshot("case-02", online=False))
    bad_name = replace(snapshot("case-03"), readings=(PointReading("bad name!", 1.0, Quality.GOOD),))
    await parts.sink.device_polled(bad_name)
    for _ in range(2):  # the second batch takes the checked fast path for every point
        parts.metrics.telemetry_points_invalid = 0
        assert parts.sink.emit_telemetry() == len(values) - 2 + 2  # nan, inf and the bad name refused
        assert parts.metrics.telemetry_points_invalid == 3
    rows = [r for r in parts.outbox.pending(10) if r.kind is OutboxKind.TELEMETRY]
    assert len(rows) == 2
    for row in rows:
        batch = parse_message(row.topic, row.payload)
        assert isinstance(batch, TelemetryBatch)
        assert row.payload == batch.to_bytes()
        assert [p.value for p in batch.points if p.device_id == "case-01"] == values[:-2]


def bus_sink(parts: Parts) -> StoreSink:
    return StoreSink(store_id="store-001", db=parts.db, outbox=parts.outbox, clock=parts.clock,
                     metrics=parts.metrics, buses={"cases": ["case-01", "case-02"], "lanes": ["lane-01"]})


async def test_one_telemetry_batch_per_bus_with_only_that_bus_s_devices(parts: Parts) -> None:
    sink = bus_sink(parts)
    for device_id in ("case-01", "case-02", "lane-01", "stray-01"):
        await sink.device_polled(snapshot(device_id))
    assert sink.emit_telemetry("lanes") == 2
    assert sink.emit_telemetry("cases") == 4
    assert sink.emit_telemetry(UNASSIGNED) == 2  # a device on no configured bus has its own group
    batches = [b for b in parts.messages(OutboxKind.TELEMETRY) if isinstance(b, TelemetryBatch)]
    assert [sorted({p.device_id for p in b.points}) for b in batches] == [
        ["lane-01"], ["case-01", "case-02"], ["stray-01"]]
    assert [b.seq for b in batches] == [0, 1, 2]  # one sequence for the store, as before
    assert sink.emit_telemetry() == 8  # None: the whole store


async def test_a_bus_s_cycle_window_closes_on_its_own_devices_only(parts: Parts) -> None:
    sink = bus_sink(parts)
    for device_id in ("case-01", "case-02", "lane-01"):
        await sink.device_polled(snapshot(device_id))
    await sink.device_polled(snapshot("case-02", online=False))
    sink.open_cycle_window("cases")
    sink.open_cycle_window("lanes")
    cases = asyncio.ensure_future(sink.wait_for_fresh_cycle("cases"))
    lanes = asyncio.ensure_future(sink.wait_for_fresh_cycle("lanes"))
    await sink.device_polled(snapshot("lane-01"))
    await asyncio.sleep(0)
    assert lanes.done() and not cases.done()  # case-02 is offline: only case-01 is awaited
    await sink.device_polled(snapshot("case-01"))
    await asyncio.sleep(0)
    assert cases.done()
    sink.open_cycle_window("cases")  # a new window waits for a new poll
    again = asyncio.ensure_future(sink.wait_for_fresh_cycle("cases"))
    await sink.device_polled(snapshot("lane-01"))
    await asyncio.sleep(0)
    assert not again.done()
    again.cancel()
