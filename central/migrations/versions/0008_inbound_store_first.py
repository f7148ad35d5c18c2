"""Store first, process second: the inbound ledger keeps each message until it is applied.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-24

`inbound_messages` becomes the inbox: ingest stores each accepted MQTT message (topic and
raw payload, `state` pending) and commits before acknowledging it; a processor applies
pending rows and marks them processed (`processed_at`, `outcome`). A failing message
keeps its `attempts`, first failure time, `last_error` and `next_attempt_at` (backoff)
until it is applied or moved to `dead_letters`. The partial index lets every worker find
pending rows without reading the processed ones.

Rows from before this revision were applied in the same transaction that ledgered them:
they become processed, at their receive time, without topic or payload.

Hand-written and frozen: plain SQLAlchemy types, never central's models.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

PENDING = sa.text("state = 'pending'")


def upgrade() -> None:
    with op.batch_alter_table("inbound_messages") as batch:
        batch.add_column(sa.Column("topic", sa.Text(), nullable=True))
        batch.add_column(sa.Column("payload", sa.LargeBinary(), nullable=True))
        batch.add_column(sa.Column("state", sa.String(16), nullable=False, server_default="processed"))
        batch.add_column(sa.Column("attempts", sa.Integer(), nullable=False, server_default="0"))
        batch.add_column(sa.Column("last_error", sa.Text(), nullable=True))
        batch.add_column(sa.Column("first_failed_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("processed_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("outcome", sa.String(16), nullable=True))
    op.execute("UPDATE inbound_messages SET processed_at = received_at, outcome = 'applied'")
    with op.batch_alter_table("inbound_messages") as batch:
        batch.alter_column("state", server_default=None)
        batch.alter_column("attempts", server_default=None)
    op.create_index("ix_inbound_messages_pending", "inbound_messages", ["id"],
                    sqlite_where=PENDING, postgresql_where=PENDING)


def downgrade() -> None:
    # Pending rows were never applied: dropping their payload would lose them. Refuse, say why.
    pending = op.get_bind().execute(sa.text("SELECT count(*) FROM inbound_messages WHERE state = 'pending'"))
    waiting = pending.scalar_one()
    if waiting:
        raise RuntimeError(f"{waiting} inbound message(s) are stored but not yet applied: start central once "
                           "on this revision to apply them, then downgrade")
    op.drop_index("ix_inbound_messages_pending", table_name="inbound_messages")
    with op.batch_alter_table("inbound_messages") as batch:
        for column in ("outcome", "processed_at", "next_attempt_at", "first_failed_at", "last_error", "attempts",
                       "state", "payload", "topic"):
            batch.drop_column(column)
