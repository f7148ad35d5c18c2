"""Durable timers: pending deadlines fired once by any central worker.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-23

Hand-written and frozen, like 0001: plain SQLAlchemy types, never central's models.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

PENDING_WHERE = "failed_at IS NULL"


def upgrade() -> None:
    op.create_table(
        "timers",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("key", sa.String(200), nullable=False),
        sa.Column("kind", sa.String(40), nullable=False),
        sa.Column("ticket_id", sa.Integer(), nullable=True),
        sa.Column("due_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("data", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("failed_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["ticket_id"], ["tickets.id"], name="fk_timers_ticket_id_tickets",
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name="pk_timers"),
        sa.UniqueConstraint("key", name="uq_timers_key"),
    )
    op.create_index("ix_timers_ticket_id", "timers", ["ticket_id"])
    op.create_index("ix_timers_due", "timers", ["due_at"], sqlite_where=sa.text(PENDING_WHERE),
                    postgresql_where=sa.text(PENDING_WHERE))


def downgrade() -> None:
    op.drop_index("ix_timers_due", table_name="timers")
    op.drop_index("ix_timers_ticket_id", table_name="timers")
    op.drop_table("timers")
