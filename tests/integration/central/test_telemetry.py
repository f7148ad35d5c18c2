"""Every telemetry sample stored in bulk, and the HACCP temperature log built from the batches."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import event, func, select

from central.db import Database
from central.ingest.flows import Outcome
from central.ingest.processor import Ingestor
from central.metrics import Metrics
from central.clock import FakeClock
from central.store_config import service as store_config
from central.stores.models import DevicePoint
from central.telemetry import service as telemetry
from central.telemetry.models import HaccpInterval, telemetry_samples
from device_profiles import ProfileRegistry
from protocols.mqtt.messages import DeviceHealth, Quality, RuleParameters, StoreHealth, TelemetryBatch, TelemetryPoint
from tests.integration.central.support import T0, send

STORE = "store-1"


def health(*devices: tuple[str, str]) -> StoreHealth:
    return StoreHealth(store_id=STORE, name="Harbour Road", online=True, sent_at=T0 - timedelta(minutes=5),
                       devices=[DeviceHealth(device_id=d, device_model=m, online=True, location="Aisle 3")
                                for d, m in devices])


def case_batch(at: datetime, air: float | None, *, quality: Quality | str = Quality.GOOD, defrost: bool = False, door: bool = False,
               device: str = "case-01", seq: int = 1, **extra: Any) -> TelemetryBatch:
    """One poll of a Dixell XR75CX case."""
    points = [
        TelemetryPoint(device_id=device, point="air_temp", value=air, quality=Quality(quality), unit="°C"),
        TelemetryPoint(device_id=device, point="p1_status", value=extra.get("p1_status", "ok")),
        TelemetryPoint(device_id=device, point="machine_on", value=True),
        TelemetryPoint(device_id=device, point="defrost_active", value=defrost),
        TelemetryPoint(device_id=device, point="door_alarm", value=door),
        TelemetryPoint(device_id=device, point="setpoint", value=3.0, unit="°C"),
    ]
    return TelemetryBatch(store_id=STORE, seq=seq, taken_at=at, points=points)


def intervals(db: Database) -> list[HaccpInterval]:
    with db.session() as session:
        return list(session.scalars(select(HaccpInterval).order_by(HaccpInterval.device_id, HaccpInterval.point,
                                                                   HaccpInterval.interval_start)))


def sample_count(db: Database) -> int:
    with db.session() as session:
        return telemetry.sample_count(session=session)


@contextmanager
def statements(db: Database) -> Iterator[list[tuple[str, bool]]]:
    seen: list[tuple[str, bool]] = []

    def record(_conn: Any, _cursor: Any, statement: str, _params: Any, _context: Any, executemany: bool) -> None:
        seen.append((statement, executemany))

    event.listen(db.engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(db.engine, "before_cursor_execute", record)


def test_every_sample_is_stored_with_its_value_encoded(db: Database, ingestor: Ingestor) -> None:
    batch = TelemetryBatch(store_id=STORE, seq=1, taken_at=T0, points=[
        TelemetryPoint(device_id="case-01", point="air_temp", value=4.5, unit="°C"),
        TelemetryPoint(device_id="case-01", point="count", value=7),
        TelemetryPoint(device_id="case-01", point="defrost_active", value=True),
        TelemetryPoint(device_id="case-01", point="door_alarm", value=False),
        TelemetryPoint(device_id="case-01", point="p1_status", value="short"),
        TelemetryPoint(device_id="case-02", point="air_temp", value=None, quality=Quality.STALE, unit="°C"),
    ])
    assert send(ingestor, batch).outcome is Outcome.ACCEPTED
    send(ingestor, case_batch(T0 + timedelta(minutes=1), 4.7, seq=2))
    with db.session() as session:
        rows = {(r.device_id, r.point, r.taken_at): r for r in session.execute(select(telemetry_samples))}
        assert telemetry.sample_count(session=session) == 6 + 6
        air = rows[("case-01", "air_temp", T0)]
        assert (air.value, air.state, air.quality, air.unit) == (4.5, None, "good", "°C")
        assert (rows[("case-01", "count", T0)].value, rows[("case-01", "count", T0)].state) == (7.0, None)
        assert (rows[("case-01", "defrost_active", T0)].value, rows[("case-01", "defrost_active", T0)].state) == (1.0, "true")
        assert (rows[("case-01", "door_alarm", T0)].value, rows[("case-01", "door_alarm", T0)].state) == (0.0, "false")
        assert (rows[("case-01", "p1_status", T0)].value, rows[("case-01", "p1_status", T0)].state) == (None, "short")
        stale = rows[("case-02", "air_temp", T0)]
        assert (stale.value, stale.state, stale.quality) == (None, None, "stale")
        series = telemetry.samples_of(session=session, store_id=STORE, device_id="case-01", point="air_temp")
        assert [(s.taken_at, s.value) for s in series] == [(T0, 4.5), (T0 + timedelta(minutes=1), 4.7)]
        # the latest-value table is kept as before
        latest = session.get(DevicePoint, (STORE, "case-01", "air_temp"))
        assert latest is not None and latest.value == 4.7


def test_a_batch_is_inserted_in_one_bulk_operation_never_row_by_row(db: Database, ingestor: Ingestor) -> None:
    points = [TelemetryPoint(device_id=f"dev-{i // 10}", point=f"p{i % 10}", value=float(i)) for i in range(500)]
    with statements(db) as seen:
        send(ingestor, TelemetryBatch(store_id="store-9", seq=1, taken_at=T0, points=points))
    assert sample_count(db) == 500
    sample_inserts = [(sql, many) for sql, many in seen if "telemetry_samples" in sql]
    if db.dialect == "postgresql":
        assert sample_inserts == []  # COPY, on the raw psycopg connection
    else:
        assert len(sample_inserts) == 1 and sample_inserts[0][1] is True  # one executemany


def test_a_batch_repeating_a_point_stores_its_last_value_once(db: Database, ingestor: Ingestor) -> None:
    send(ingestor, TelemetryBatch(store_id=STORE, seq=1, taken_at=T0, points=[
        TelemetryPoint(device_id="case-01", point="air_temp", value=4.0, unit="°C"),
        TelemetryPoint(device_id="case-01", point="air_temp", value=4.1, unit="°C"),
    ]))
    with db.session() as session:
        series = telemetry.samples_of(session=session, store_id=STORE, device_id="case-01", point="air_temp")
    assert [s.value for s in series] == [4.1]


def test_a_redelivered_batch_adds_no_samples_and_no_log_counts(db: Database, ingestor: Ingestor) -> None:
    send(ingestor, health(("case-01", "dixell-xr75cx")))
    batch = case_batch(T0, 5.0)
    assert send(ingestor, batch).outcome is Outcome.ACCEPTED
    before = sample_count(db), [(i.samples, i.value_sum) for i in intervals(db)]
    assert send(ingestor, batch).outcome is Outcome.DUPLICATE  # same message_id
    assert (sample_count(db), [(i.samples, i.value_sum) for i in intervals(db)]) == before
    assert before[0] == 6 and before[1] == [(1, 5.0)]


def test_the_log_keeps_min_max_mean_and_flags_per_interval(db: Database, ingestor: Ingestor) -> None:
    send(ingestor, health(("case-01", "dixell-xr75cx")))
    readings: list[tuple[int, float | None, dict[str, Any]]] = [  # (minute, air, kwargs)
        (0, 4.0, {}), (3, 5.0, {}), (6, 9.0, {}),  # above the profile's 8.0 °C
        (9, 6.5, {"defrost": True}), (12, 3.5, {"door": True}),
        (15, 4.0, {}), (18, None, {"quality": "bad"}), (21, 4.2, {"p1_status": "open"}),  # second interval
    ]
    for seq, (minute, air, kwargs) in enumerate(readings, 1):
        send(ingestor, case_batch(T0 + timedelta(minutes=minute), air, seq=seq, **kwargs))
    first, second = intervals(db)  # air_temp only: setpoint is not a food temperature
    assert (first.point, first.interval_start, first.interval_s) == ("air_temp", T0, 900)
    assert (first.samples, first.value_min, first.value_max) == (5, 3.5, 9.0)
    assert first.value_sum == pytest.approx(28.0)
    assert first.high_limit == 8.0 and first.above_limit_samples == 1
    assert (first.defrost_samples, first.door_open_samples, first.probe_fault_samples) == (1, 1, 0)
    assert second.interval_start == T0 + timedelta(minutes=15)
    assert (second.samples, second.value_min, second.value_max) == (2, 4.0, 4.2)
    assert second.probe_fault_samples == 2  # a bad reading, and the controller's probe status "open"
    assert second.above_limit_samples == 0


def test_batches_arriving_out_of_order_merge_into_their_interval(db: Database, ingestor: Ingestor) -> None:
    send(ingestor, health(("case-01", "dixell-xr75cx")))
    for seq, (minute, air) in enumerate([(10, 5.0), (2, 2.0), (14, 7.0), (1, None)], 1):
        send(ingestor, case_batch(T0 + timedelta(minutes=minute), air, seq=seq,
                                  quality="good" if air is not None else "stale"))
    [row] = intervals(db)
    assert (row.samples, row.value_min, row.value_max, row.value_sum, row.stale_samples) == (3, 2.0, 7.0, 14.0, 1)


def test_only_refrigeration_temperatures_are_logged(db: Database, ingestor: Ingestor) -> None:
    send(ingestor, health(("case-01", "danfoss-ekc-202"), ("lane-01", "storeguard-sco-lane")))
    send(ingestor, TelemetryBatch(store_id=STORE, seq=1, taken_at=T0, points=[
        TelemetryPoint(device_id="case-01", point="air_on_temp", value=6.0, unit="°C"),
        TelemetryPoint(device_id="case-01", point="air_off_temp", value=2.0, unit="°C"),
        TelemetryPoint(device_id="case-01", point="evaporator_temp", value=-8.0, unit="°C"),
        TelemetryPoint(device_id="case-01", point="defrost_relay", value=True),
        TelemetryPoint(device_id="lane-01", point="state", value="idle"),
        TelemetryPoint(device_id="unknown-9", point="air_temp", value=12.0, unit="°C"),  # model not known yet
    ]))
    rows = {(r.device_id, r.point): r for r in intervals(db)}
    assert set(rows) == {("case-01", "air_on_temp"), ("case-01", "air_off_temp")}
    assert rows[("case-01", "air_off_temp")].high_limit == 8.0  # the high_temperature rule's point
    assert rows[("case-01", "air_on_temp")].high_limit is None  # no rule on the return air
    assert all(r.defrost_samples == 1 for r in rows.values())


def test_the_limit_follows_centrals_override_of_the_rule(db: Database, ingestor: Ingestor,
                                                         profiles: ProfileRegistry) -> None:
    send(ingestor, health(("case-01", "dixell-xr75cx")))
    send(ingestor, case_batch(T0, 6.0, seq=1))
    with db.session() as session, session.begin():
        store_config.put(session=session, store_id=STORE, issued_by="fred", now=T0, profiles=profiles,
                         devices={"case-01": {"high_temperature": RuleParameters(limit=5.0, clear=4.0)}})
    send(ingestor, case_batch(T0 + timedelta(minutes=1), 6.0, seq=2))
    [row] = intervals(db)
    assert row.high_limit == 5.0 and row.above_limit_samples == 1  # the first 6.0 was under the 8.0 then


def test_the_interval_length_is_configurable(db: Database, metrics: Metrics, clock: FakeClock,
                                             profiles: ProfileRegistry) -> None:
    ingestor = Ingestor(database=db, profiles=profiles, metrics=metrics, clock=clock, haccp_interval_s=300)
    send(ingestor, health(("case-01", "dixell-xr75cx")))
    for seq, minute in enumerate([0, 4, 5, 11], 1):
        send(ingestor, case_batch(T0 + timedelta(minutes=minute), 4.0, seq=seq))
    assert [(r.interval_start - T0, r.interval_s, r.samples) for r in intervals(db)] == [
        (timedelta(0), 300, 2), (timedelta(minutes=5), 300, 1), (timedelta(minutes=10), 300, 1)]


def test_the_log_update_is_one_statement_per_batch(db: Database, ingestor: Ingestor) -> None:
    send(ingestor, health(*[(f"case-{i:02d}", "dixell-xr75cx") for i in range(40)]))
    points = [p for i in range(40) for p in case_batch(T0, 4.0, device=f"case-{i:02d}").points]
    with statements(db) as seen:
        send(ingestor, TelemetryBatch(store_id=STORE, seq=1, taken_at=T0, points=points))
    assert len(intervals(db)) == 40
    upserts = [sql for sql, _ in seen if "haccp_intervals" in sql]
    assert len(upserts) == 1, upserts
    with db.session() as session:
        assert session.scalar(select(func.count()).select_from(HaccpInterval)) == 40
