"""Regions for stores and users, and the store a store-staff user belongs to.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-24

Roles are stored as strings, so the new ones (supervisor, regional_manager) need no DDL.
Hand-written and frozen, like 0001: plain SQLAlchemy types, never central's models.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("stores") as batch:
        batch.add_column(sa.Column("region", sa.String(64), nullable=False, server_default=""))
    with op.batch_alter_table("users") as batch:
        batch.add_column(sa.Column("region", sa.String(64), nullable=False, server_default=""))
        batch.add_column(sa.Column("store_id", sa.String(63), nullable=True))
        batch.create_foreign_key("fk_users_store_id_stores", "stores", ["store_id"], ["id"], ondelete="SET NULL")
        batch.create_index("ix_users_store_id", ["store_id"])


def downgrade() -> None:
    with op.batch_alter_table("users") as batch:
        batch.drop_index("ix_users_store_id")
        batch.drop_constraint("fk_users_store_id_stores", type_="foreignkey")
        batch.drop_column("store_id")
        batch.drop_column("region")
    with op.batch_alter_table("stores") as batch:
        batch.drop_column("region")
