"""Initial schema: stores, devices, users, technicians, tickets, events, message ledgers.

Revision ID: 0001
Revises:
Create Date: 2026-11-23

Hand-written and frozen: it uses plain SQLAlchemy types, never central's models, so later
model changes cannot alter what this revision does. `tests/integration/central` checks that
the migrated schema and the models agree on SQLite and PostgreSQL.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

OPEN_TICKET_WHERE = "status NOT IN ('resolved', 'closed', 'cancelled')"


def _time(name: str, nullable: bool = False) -> sa.Column:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "inbound_messages",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("message_id", sa.String(64), nullable=False),
        sa.Column("store_id", sa.String(63), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=True),
        _time("received_at"),
        sa.PrimaryKeyConstraint("id", name="pk_inbound_messages"),
        sa.UniqueConstraint("message_id", name="uq_inbound_messages_message_id"),
    )
    op.create_index("ix_inbound_messages_store_id", "inbound_messages", ["store_id"])

    op.create_table(
        "stores",
        sa.Column("id", sa.String(63), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("online", sa.Boolean(), nullable=False),
        sa.Column("gateway_version", sa.String(32), nullable=False),
        _time("last_seen", nullable=True),
        _time("health_at", nullable=True),
        _time("created_at"),
        sa.PrimaryKeyConstraint("id", name="pk_stores"),
    )

    op.create_table(
        "users",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("username", sa.String(64), nullable=False),
        sa.Column("display_name", sa.String(100), nullable=False),
        sa.Column("role", sa.String(20), nullable=False),
        sa.Column("password_hash", sa.String(255), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        _time("created_at"),
        sa.PrimaryKeyConstraint("id", name="pk_users"),
        sa.UniqueConstraint("username", name="uq_users_username"),
    )

    op.create_table(
        "api_tokens",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("token_hash", sa.String(64), nullable=False),
        _time("created_at"),
        _time("expires_at"),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], name="fk_api_tokens_user_id_users", ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name="pk_api_tokens"),
        sa.UniqueConstraint("token_hash", name="uq_api_tokens_token_hash"),
    )
    op.create_index("ix_api_tokens_user_id", "api_tokens", ["user_id"])

    op.create_table(
        "devices",
        sa.Column("store_id", sa.String(63), nullable=False),
        sa.Column("device_id", sa.String(128), nullable=False),
        sa.Column("model", sa.String(128), nullable=False),
        sa.Column("kind", sa.String(40), nullable=True),
        sa.Column("location", sa.String(200), nullable=False),
        sa.Column("online", sa.Boolean(), nullable=True),
        _time("last_ok_at", nullable=True),
        _time("last_seen", nullable=True),
        sa.ForeignKeyConstraint(["store_id"], ["stores.id"], name="fk_devices_store_id_stores", ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("store_id", "device_id", name="pk_devices"),
    )

    op.create_table(
        "technicians",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("skills", sa.JSON(), nullable=False),
        sa.Column("region", sa.String(64), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], name="fk_technicians_user_id_users", ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name="pk_technicians"),
        sa.UniqueConstraint("user_id", name="uq_technicians_user_id"),
    )

    op.create_table(
        "device_points",
        sa.Column("store_id", sa.String(63), nullable=False),
        sa.Column("device_id", sa.String(128), nullable=False),
        sa.Column("point", sa.String(128), nullable=False),
        sa.Column("value", sa.JSON(), nullable=True),
        sa.Column("quality", sa.String(8), nullable=False),
        sa.Column("unit", sa.String(16), nullable=False),
        _time("taken_at"),
        sa.ForeignKeyConstraint(
            ["store_id", "device_id"],
            ["devices.store_id", "devices.device_id"],
            name="fk_device_points_store_id_device_id_devices",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("store_id", "device_id", "point", name="pk_device_points"),
    )

    op.create_table(
        "tickets",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("store_id", sa.String(63), nullable=False),
        sa.Column("device_id", sa.String(128), nullable=False),
        sa.Column("fault_code", sa.String(128), nullable=False),
        sa.Column("device_model", sa.String(128), nullable=False),
        sa.Column("title", sa.String(200), nullable=False),
        sa.Column("location", sa.String(200), nullable=False),
        sa.Column("ticket_class", sa.String(16), nullable=False),
        sa.Column("fault_class", sa.String(16), nullable=False),
        sa.Column("severity", sa.String(16), nullable=False),
        sa.Column("priority", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("required_skill", sa.String(40), nullable=True),
        sa.Column("assignee_id", sa.Integer(), nullable=True),
        sa.Column("fault_active", sa.Boolean(), nullable=False),
        sa.Column("raise_count", sa.Integer(), nullable=False),
        _time("first_raised_at"),
        _time("last_raised_at"),
        _time("fault_cleared_at", nullable=True),
        sa.Column("evidence", sa.JSON(), nullable=False),
        _time("eta", nullable=True),
        sa.Column("resolution_code", sa.String(64), nullable=True),
        sa.Column("resolution_note", sa.Text(), nullable=False),
        _time("created_at"),
        _time("updated_at"),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["assignee_id"], ["technicians.id"], name="fk_tickets_assignee_id_technicians"),
        sa.ForeignKeyConstraint(
            ["store_id", "device_id"],
            ["devices.store_id", "devices.device_id"],
            name="fk_tickets_store_id_device_id_devices",
        ),
        sa.ForeignKeyConstraint(["store_id"], ["stores.id"], name="fk_tickets_store_id_stores"),
        sa.PrimaryKeyConstraint("id", name="pk_tickets"),
    )
    op.create_index("ix_tickets_assignee_id", "tickets", ["assignee_id"])
    op.create_index("ix_tickets_status_priority", "tickets", ["status", "priority"])
    op.create_index("ix_tickets_store_device_fault", "tickets", ["store_id", "device_id", "fault_code"])
    op.create_index(
        "uq_tickets_open_fault",
        "tickets",
        ["store_id", "device_id", "fault_code"],
        unique=True,
        sqlite_where=sa.text(OPEN_TICKET_WHERE),
        postgresql_where=sa.text(OPEN_TICKET_WHERE),
    )

    op.create_table(
        "outbound_messages",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("message_id", sa.String(64), nullable=False),
        sa.Column("store_id", sa.String(63), nullable=False),
        sa.Column("ticket_id", sa.Integer(), nullable=True),
        sa.Column("topic", sa.String(255), nullable=False),
        sa.Column("payload", sa.Text(), nullable=False),
        _time("created_at"),
        _time("sent_at", nullable=True),
        sa.ForeignKeyConstraint(
            ["ticket_id"], ["tickets.id"], name="fk_outbound_messages_ticket_id_tickets", ondelete="SET NULL"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_outbound_messages"),
        sa.UniqueConstraint("message_id", name="uq_outbound_messages_message_id"),
    )
    op.create_index("ix_outbound_messages_ticket_id", "outbound_messages", ["ticket_id"])
    op.create_index(
        "ix_outbound_messages_pending",
        "outbound_messages",
        ["id"],
        sqlite_where=sa.text("sent_at IS NULL"),
        postgresql_where=sa.text("sent_at IS NULL"),
    )

    op.create_table(
        "ticket_events",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("ticket_id", sa.Integer(), nullable=False),
        _time("at"),
        _time("client_at", nullable=True),
        sa.Column("type", sa.String(24), nullable=False),
        sa.Column("from_status", sa.String(16), nullable=True),
        sa.Column("to_status", sa.String(16), nullable=True),
        sa.Column("actor", sa.String(64), nullable=True),
        sa.Column("source", sa.String(8), nullable=False),
        sa.Column("note", sa.Text(), nullable=False),
        sa.Column("data", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(
            ["ticket_id"], ["tickets.id"], name="fk_ticket_events_ticket_id_tickets", ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_ticket_events"),
    )
    op.create_index("ix_ticket_events_ticket_id", "ticket_events", ["ticket_id"])


def downgrade() -> None:
    for table in (
        "ticket_events",
        "outbound_messages",
        "tickets",
        "device_points",
        "technicians",
        "devices",
        "api_tokens",
        "users",
        "stores",
        "inbound_messages",
    ):
        op.drop_table(table)  # dropping a table drops its indexes
