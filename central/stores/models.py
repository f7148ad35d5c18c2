"""Stores, devices and latest point values (stores domain: ORM models and HTTP schemas)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict
from sqlalchemy import JSON, ForeignKey, ForeignKeyConstraint, String
from sqlalchemy.orm import Mapped, mapped_column

from central.db import Base, StrEnumType
from central.sla.models import Criticality


class Store(Base):
    __tablename__ = "stores"

    id: Mapped[str] = mapped_column(String(63), primary_key=True)  # the store id of the MQTT topics
    name: Mapped[str] = mapped_column(String(200))
    region: Mapped[str] = mapped_column(String(64), default="", server_default="")  # supervisors, escalation
    online: Mapped[bool] = mapped_column(default=False)
    gateway_version: Mapped[str] = mapped_column(String(32), default="")
    last_seen: Mapped[datetime | None]  # any message from the store
    health_at: Mapped[datetime | None]  # sent_at of the newest health message applied
    created_at: Mapped[datetime]


class Device(Base):
    __tablename__ = "devices"

    store_id: Mapped[str] = mapped_column(ForeignKey("stores.id", ondelete="CASCADE"), primary_key=True)
    device_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    model: Mapped[str] = mapped_column(String(128), default="")
    kind: Mapped[str | None] = mapped_column(String(40))  # the device profile's kind, when the model is known
    location: Mapped[str] = mapped_column(String(200), default="")
    online: Mapped[bool | None]  # None until a health message said
    last_ok_at: Mapped[datetime | None]
    last_seen: Mapped[datetime | None]
    criticality: Mapped[Criticality] = mapped_column(StrEnumType(Criticality, 16), default=Criticality.NORMAL,
                                                     server_default=Criticality.NORMAL.value)  # -> priority


class DevicePoint(Base):
    """The latest value of one point of one device (upserted per telemetry batch)."""

    __tablename__ = "device_points"
    __table_args__ = (
        ForeignKeyConstraint(
            ["store_id", "device_id"], ["devices.store_id", "devices.device_id"], ondelete="CASCADE"
        ),
    )

    store_id: Mapped[str] = mapped_column(String(63), primary_key=True)
    device_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    point: Mapped[str] = mapped_column(String(128), primary_key=True)
    value: Mapped[Any] = mapped_column(JSON, nullable=True)
    quality: Mapped[str] = mapped_column(String(8))
    unit: Mapped[str] = mapped_column(String(16), default="")
    taken_at: Mapped[datetime]


class StoreRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    name: str
    online: bool
    gateway_version: str
    last_seen: datetime | None
    open_tickets: int = 0


class PointRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    point: str
    value: float | int | bool | str | None
    quality: str
    unit: str
    taken_at: datetime


class DeviceRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    store_id: str
    device_id: str
    model: str
    kind: str | None
    location: str
    online: bool | None
    last_ok_at: datetime | None
    last_seen: datetime | None
    criticality: Criticality = Criticality.NORMAL
    values: list[PointRead] = []


class StoreDetail(StoreRead):
    devices: list[DeviceRead]
