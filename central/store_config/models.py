"""Desired configuration versions and the stores' acknowledgements (store_config domain: ORM models).

Every accepted change of a store's rule overrides is a new row of `store_config_versions`
(who, when, the full override set and its hash), never an update: the table is the audit
trail. `store_config_acks` keeps the newest answer of each store (applied, unchanged or
rejected, and which version runs there).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from central.db import Base, StrEnumType
from protocols.mqtt.messages import ConfigResult


class StoreConfigVersion(Base):
    __tablename__ = "store_config_versions"
    __table_args__ = (UniqueConstraint("store_id", "version"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    store_id: Mapped[str] = mapped_column(ForeignKey("stores.id", ondelete="CASCADE"))
    version: Mapped[int]  # grows per store
    hash: Mapped[str] = mapped_column(String(64))  # protocols.mqtt.messages.config_hash(devices)
    devices: Mapped[dict[str, Any]] = mapped_column(JSON)  # {device_id: {rule_code: {field: value}}}
    issued_by: Mapped[str] = mapped_column(String(64))  # the username
    issued_at: Mapped[datetime]
    message_id: Mapped[str] = mapped_column(String(64))  # of the DesiredConfig published for it


class StoreConfigAck(Base):
    """The newest ConfigAck of one store."""

    __tablename__ = "store_config_acks"

    store_id: Mapped[str] = mapped_column(ForeignKey("stores.id", ondelete="CASCADE"), primary_key=True)
    version: Mapped[int]  # the version the ack answers
    hash: Mapped[str] = mapped_column(String(64))
    result: Mapped[ConfigResult] = mapped_column(StrEnumType(ConfigResult, 16))
    error: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)  # ConfigProblem, when rejected
    active_version: Mapped[int | None]  # what the store runs now
    applied_at: Mapped[datetime]  # when the store decided (its clock)
    received_at: Mapped[datetime]
    message_id: Mapped[str] = mapped_column(String(64))
