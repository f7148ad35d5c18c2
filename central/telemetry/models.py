"""Telemetry samples and the HACCP temperature log (telemetry domain: tables and HTTP schemas).

`telemetry_samples` is an append-only time series: a Core table with no primary key, only
the index a series is read by (store, device, point, time) and a BRIN index on `taken_at`
(PostgreSQL; a B-tree on SQLite) that the retention job deletes by. It is written with COPY
on PostgreSQL and one executemany on SQLite, never a statement per row; the ingest ledger
(one row per `message_id`) keeps a redelivered batch from being stored twice. No foreign
keys: a check per row would slow bulk inserts, and the record outlives a removed device.

A value is stored as `value` (a float: numbers, and 1.0 / 0.0 for a bit) and `state` (text:
"true" / "false" for a bit, the state name of an enum point, any other string); a point
with no value (stale or bad quality) has both NULL.

`haccp_intervals` holds one row per temperature probe of a refrigeration controller and
fixed interval (`interval_s`, default 15 min), kept up to date by an upsert per batch:
counters add up, min and max merge, so batches may arrive in any order.
"""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import Column, Double, Index, String, Table, Text
from sqlalchemy.orm import Mapped, mapped_column

from central.db import Base, UTCDateTime

telemetry_samples = Table(
    "telemetry_samples",
    Base.metadata,
    Column("store_id", String(63), nullable=False),
    Column("device_id", String(128), nullable=False),
    Column("point", String(128), nullable=False),
    Column("taken_at", UTCDateTime(), nullable=False),
    Column("value", Double(), nullable=True),
    Column("state", Text(), nullable=True),
    Column("quality", String(8), nullable=False),
    Column("unit", String(16), nullable=False),
    Index("ix_telemetry_samples_series", "store_id", "device_id", "point", "taken_at"),
    Index("ix_telemetry_samples_taken_at", "taken_at", postgresql_using="brin"),
)

SAMPLE_COLUMNS = ("store_id", "device_id", "point", "taken_at", "value", "state", "quality", "unit")


class HaccpInterval(Base):
    """One probe, one fixed interval: min/max/sum over the good readings, and what else happened."""

    __tablename__ = "haccp_intervals"
    __table_args__ = (
        Index("ix_haccp_intervals_interval_start", "interval_start", postgresql_using="brin"),
    )

    store_id: Mapped[str] = mapped_column(String(63), primary_key=True)
    device_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    point: Mapped[str] = mapped_column(String(128), primary_key=True)
    interval_start: Mapped[datetime] = mapped_column(primary_key=True)
    interval_s: Mapped[int] = mapped_column(primary_key=True)  # rows keep the length they were written with
    unit: Mapped[str] = mapped_column(String(16))
    samples: Mapped[int]  # good numeric readings
    value_sum: Mapped[float] = mapped_column(Double())
    value_min: Mapped[float | None] = mapped_column(Double())
    value_max: Mapped[float | None] = mapped_column(Double())
    high_limit: Mapped[float | None] = mapped_column(Double())  # the effective limit, as of the newest batch
    above_limit_samples: Mapped[int]  # good readings above high_limit
    defrost_samples: Mapped[int]  # readings taken while the controller was defrosting
    door_open_samples: Mapped[int]  # readings taken with the door open (or its alarm on)
    probe_fault_samples: Mapped[int]  # bad-quality readings, or the controller's probe alarm on
    stale_samples: Mapped[int]  # polls the device did not answer
    updated_at: Mapped[datetime]


class TemperatureFlags(BaseModel):
    above_limit: bool = False
    defrost: bool = False
    door_open: bool = False
    probe_fault: bool = False
    gap: bool = False  # no good reading in the interval (no data, device silent, or probe faulty)

    def names(self) -> list[str]:
        return [name for name, on in self.model_dump().items() if on]


class TemperatureInterval(BaseModel):
    point: str
    unit: str
    interval_start: datetime
    interval_end: datetime
    min: float | None
    max: float | None
    mean: float | None
    samples: int
    high_limit: float | None
    flags: TemperatureFlags


class TemperatureLog(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    store_id: str
    store_name: str
    device_id: str
    device_model: str
    location: str
    interval_s: int  # the configured length; gaps are filled with intervals of it
    from_: datetime = Field(alias="from")
    to: datetime
    intervals: list[TemperatureInterval]
