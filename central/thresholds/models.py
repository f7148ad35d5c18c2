"""Threshold scopes and change sets (thresholds domain: ORM models).

`threshold_overrides` holds the rule overrides of every scope, one row per scope target and
rule code, with only the fields that scope sets. The parts of the target a scope does not use
are "" (not NULL), so the unique key holds on SQLite and PostgreSQL alike:

    scope   model   store_id   device_id
    model   m       ""         ""           every device of model m, chain-wide
    store   m       s          ""           the devices of model m in store s
    device  ""      s          d            device d of store s

`threshold_changes` is the audit trail: every accepted change is a new chain-wide version
(who, when, why, the field-by-field diff, the store config versions it issued), never updated.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from central.db import Base, StrEnumType


class Scope(StrEnum):
    MODEL = "model"
    STORE = "store"
    DEVICE = "device"


class ThresholdOverride(Base):
    __tablename__ = "threshold_overrides"
    __table_args__ = (
        UniqueConstraint("scope", "model", "store_id", "device_id", "rule_code"),
        Index("ix_threshold_overrides_store_id", "store_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    scope: Mapped[Scope] = mapped_column(StrEnumType(Scope, 16))
    model: Mapped[str] = mapped_column(String(128))  # "" for the device scope
    store_id: Mapped[str] = mapped_column(String(63))  # "" for the model scope
    device_id: Mapped[str] = mapped_column(String(128))  # "" unless the device scope
    rule_code: Mapped[str] = mapped_column(String(128))
    params: Mapped[dict[str, Any]] = mapped_column(JSON)  # the fields this scope sets: {"limit": 5.0, ...}
    change_version: Mapped[int]  # the threshold change that last wrote it
    updated_by: Mapped[str] = mapped_column(String(64))
    updated_at: Mapped[datetime]


class ThresholdChange(Base):
    """One accepted change of any scope: a chain-wide version."""

    __tablename__ = "threshold_changes"

    version: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    author: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime]
    reason: Mapped[str] = mapped_column(Text)
    request: Mapped[dict[str, Any]] = mapped_column(JSON)  # what was asked: op, target(s), rules
    diff: Mapped[list[dict[str, Any]]] = mapped_column(JSON)  # [{scope, target, rule, field, old, new}]
    stores: Mapped[list[dict[str, Any]]] = mapped_column(JSON)  # [{store_id, version, hash}] issued by it
