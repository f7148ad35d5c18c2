"""Desired store configuration: versions per store and the stores' acknowledgements.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23

`store_config_versions` keeps every override set central pushed to a store (who, when, the
full set and its hash); `store_config_acks` the newest ConfigAck of each store.

Hand-written and frozen, like 0001: plain SQLAlchemy types, never central's models.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _time(name: str, nullable: bool = False) -> sa.Column:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "store_config_versions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("store_id", sa.String(63), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
        sa.Column("devices", sa.JSON(), nullable=False),
        sa.Column("issued_by", sa.String(64), nullable=False),
        _time("issued_at"),
        sa.Column("message_id", sa.String(64), nullable=False),
        sa.ForeignKeyConstraint(["store_id"], ["stores.id"], name="fk_store_config_versions_store_id_stores",
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name="pk_store_config_versions"),
        sa.UniqueConstraint("store_id", "version", name="uq_store_config_versions_store_id_version"),
    )

    op.create_table(
        "store_config_acks",
        sa.Column("store_id", sa.String(63), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
        sa.Column("result", sa.String(16), nullable=False),
        sa.Column("error", sa.JSON(), nullable=True),
        sa.Column("active_version", sa.Integer(), nullable=True),
        _time("applied_at"),
        _time("received_at"),
        sa.Column("message_id", sa.String(64), nullable=False),
        sa.ForeignKeyConstraint(["store_id"], ["stores.id"], name="fk_store_config_acks_store_id_stores",
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("store_id", name="pk_store_config_acks"),
    )


def downgrade() -> None:
    op.drop_table("store_config_acks")
    op.drop_table("store_config_versions")
