"""Threshold scopes and chain-wide change versions.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-09

`threshold_overrides` holds rule overrides per scope target: a device model chain-wide
(`scope` model, `model`), a model within one store (store: `model`, `store_id`) or one device
(device: `store_id`, `device_id`); the parts a scope does not use are "". `threshold_changes`
keeps every accepted change as a chain-wide version: author, time, reason, the diff and the
store config versions it issued.

Each store's newest desired config (`store_config_versions`, pushed before scopes existed)
becomes its device-scope rows (change version 0), so the first change compiled after the
upgrade keeps what the stores run.

Hand-written and frozen: plain SQLAlchemy types, never central's models.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    overrides = op.create_table(
        "threshold_overrides",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("scope", sa.String(16), nullable=False),
        sa.Column("model", sa.String(128), nullable=False),
        sa.Column("store_id", sa.String(63), nullable=False),
        sa.Column("device_id", sa.String(128), nullable=False),
        sa.Column("rule_code", sa.String(128), nullable=False),
        sa.Column("params", sa.JSON(), nullable=False),
        sa.Column("change_version", sa.Integer(), nullable=False),
        sa.Column("updated_by", sa.String(64), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_threshold_overrides"),
        sa.UniqueConstraint("scope", "model", "store_id", "device_id", "rule_code",
                            name="uq_threshold_overrides_scope_model_store_id_device_id_rule_code"),
    )
    op.create_index("ix_threshold_overrides_store_id", "threshold_overrides", ["store_id"])
    op.create_table(
        "threshold_changes",
        sa.Column("version", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("author", sa.String(64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("request", sa.JSON(), nullable=False),
        sa.Column("diff", sa.JSON(), nullable=False),
        sa.Column("stores", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("version", name="pk_threshold_changes"),
    )
    op.bulk_insert(overrides, _device_scope_of_current_configs())


def _device_scope_of_current_configs() -> list[dict[str, object]]:
    versions = sa.table("store_config_versions", sa.column("store_id", sa.String()),
                        sa.column("version", sa.Integer()), sa.column("devices", sa.JSON()),
                        sa.column("issued_by", sa.String()), sa.column("issued_at", sa.DateTime(timezone=True)))
    newest = (sa.select(versions.c.store_id, sa.func.max(versions.c.version).label("version"))
              .group_by(versions.c.store_id).subquery())
    query = sa.select(versions.c.store_id, versions.c.devices, versions.c.issued_by, versions.c.issued_at).join(
        newest, (versions.c.store_id == newest.c.store_id) & (versions.c.version == newest.c.version))
    rows = []
    for store_id, devices, issued_by, issued_at in op.get_bind().execute(query):
        for device_id, rules in (devices or {}).items():
            for code, params in rules.items():
                if params:
                    rows.append({"scope": "device", "model": "", "store_id": store_id, "device_id": device_id,
                                 "rule_code": code, "params": params, "change_version": 0,
                                 "updated_by": issued_by, "updated_at": issued_at})
    return rows


def downgrade() -> None:
    op.drop_table("threshold_changes")
    op.drop_index("ix_threshold_overrides_store_id", table_name="threshold_overrides")
    op.drop_table("threshold_overrides")
