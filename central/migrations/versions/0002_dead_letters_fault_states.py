"""Dead letters and fault states.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-30

`dead_letters` keeps the raw messages ingest gave up on (stored, then acknowledged, so a
poison message cannot stall the broker's in-flight window). `fault_states` keeps the
newest known event of each fault, so out-of-order raise/clear events are recognised.
Existing faults get their row from their next event; until then the tickets' own times
guard against older events.

Hand-written and frozen, like 0001: plain SQLAlchemy types, never central's models.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _time(name: str, nullable: bool = False) -> sa.Column:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "dead_letters",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("digest", sa.String(64), nullable=False),
        sa.Column("topic", sa.Text(), nullable=False),
        sa.Column("store_id", sa.String(63), nullable=True),
        sa.Column("message_id", sa.String(64), nullable=True),
        sa.Column("payload", sa.LargeBinary(), nullable=False),
        sa.Column("error", sa.Text(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        _time("first_failed_at"),
        _time("last_failed_at"),
        sa.PrimaryKeyConstraint("id", name="pk_dead_letters"),
        sa.UniqueConstraint("digest", name="uq_dead_letters_digest"),
    )
    op.create_index("ix_dead_letters_store_id", "dead_letters", ["store_id"])

    op.create_table(
        "fault_states",
        sa.Column("store_id", sa.String(63), nullable=False),
        sa.Column("device_id", sa.String(128), nullable=False),
        sa.Column("fault_code", sa.String(128), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        _time("occurred_at"),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("message_id", sa.String(64), nullable=False),
        _time("updated_at"),
        sa.ForeignKeyConstraint(
            ["store_id", "device_id"],
            ["devices.store_id", "devices.device_id"],
            name="fk_fault_states_store_id_device_id_devices",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("store_id", "device_id", "fault_code", name="pk_fault_states"),
    )


def downgrade() -> None:
    op.drop_table("fault_states")
    op.drop_table("dead_letters")  # dropping a table drops its indexes
