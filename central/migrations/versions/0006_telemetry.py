"""Telemetry samples and the HACCP temperature log.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-23

`telemetry_samples`: every sample of every batch, append-only, no primary key (a time
series read by its series index; the retention job deletes by the BRIN index on taken_at,
a B-tree on SQLite). `haccp_intervals`: one row per refrigerated probe and fixed interval.

Hand-written and frozen, like 0001: plain SQLAlchemy types, never central's models.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _time(name: str) -> sa.Column:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=False)


def _count(name: str) -> sa.Column:
    return sa.Column(name, sa.Integer(), nullable=False)


def upgrade() -> None:
    op.create_table(
        "telemetry_samples",
        sa.Column("store_id", sa.String(63), nullable=False),
        sa.Column("device_id", sa.String(128), nullable=False),
        sa.Column("point", sa.String(128), nullable=False),
        _time("taken_at"),
        sa.Column("value", sa.Double(), nullable=True),
        sa.Column("state", sa.Text(), nullable=True),
        sa.Column("quality", sa.String(8), nullable=False),
        sa.Column("unit", sa.String(16), nullable=False),
    )
    op.create_index("ix_telemetry_samples_series", "telemetry_samples",
                    ["store_id", "device_id", "point", "taken_at"])
    op.create_index("ix_telemetry_samples_taken_at", "telemetry_samples", ["taken_at"], postgresql_using="brin")

    op.create_table(
        "haccp_intervals",
        sa.Column("store_id", sa.String(63), nullable=False),
        sa.Column("device_id", sa.String(128), nullable=False),
        sa.Column("point", sa.String(128), nullable=False),
        _time("interval_start"),
        sa.Column("interval_s", sa.Integer(), nullable=False),
        sa.Column("unit", sa.String(16), nullable=False),
        _count("samples"),
        sa.Column("value_sum", sa.Double(), nullable=False),
        sa.Column("value_min", sa.Double(), nullable=True),
        sa.Column("value_max", sa.Double(), nullable=True),
        sa.Column("high_limit", sa.Double(), nullable=True),
        _count("above_limit_samples"),
        _count("defrost_samples"),
        _count("door_open_samples"),
        _count("probe_fault_samples"),
        _count("stale_samples"),
        _time("updated_at"),
        sa.PrimaryKeyConstraint("store_id", "device_id", "point", "interval_start", "interval_s",
                                name="pk_haccp_intervals"),
    )
    op.create_index("ix_haccp_intervals_interval_start", "haccp_intervals", ["interval_start"],
                    postgresql_using="brin")


def downgrade() -> None:
    op.drop_index("ix_haccp_intervals_interval_start", table_name="haccp_intervals")
    op.drop_table("haccp_intervals")
    op.drop_index("ix_telemetry_samples_taken_at", table_name="telemetry_samples")
    op.drop_index("ix_telemetry_samples_series", table_name="telemetry_samples")
    op.drop_table("telemetry_samples")
