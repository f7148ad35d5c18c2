"""Linked work and correlated incidents: ticket parents, work templates.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-02

`tickets.parent_id` links a child to its parent ticket; `tickets.link` says how: `incident`
(a device fault correlated under a store-wide incident: a silent bus, a power cut, many
devices failing together) or `task` (store work a template spawned with a repair).
`work_templates` are the templates, seeded with the refrigerated case over temperature:
move the goods, then a food-safety check with a discard record.

Hand-written and frozen: plain SQLAlchemy types and literal seed rows, never central's models.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

CASE_OVER_TEMPERATURE = {
    "name": "refrigerated-case-over-temperature",
    "description": "A refrigerated case above its limit with goods in it: the repair, plus the store's "
                   "food-safety work",
    "fault_class": "food_safety",
    "device_kind": "refrigeration_controller",
    "fault_codes": ["high_temperature", "controller_high_temperature"],
    "tasks": [
        {"code": "move_goods", "title": "Move the goods to another case or the cold room",
         "description": "Move everything from the affected case to a case or cold room that holds temperature."},
        {"code": "food_safety_check", "title": "Food-safety check: probe the goods, record what was discarded",
         "description": "Probe the warmest products; discard what exceeded its limit and record items and "
                        "quantities (or 'nothing discarded') when you mark the task done.",
         "requires_record": True},
    ],
    "enabled": True,
}


def upgrade() -> None:
    with op.batch_alter_table("tickets") as batch:
        batch.add_column(sa.Column("parent_id", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("link", sa.String(16), nullable=True))
        batch.create_foreign_key("fk_tickets_parent_id_tickets", "tickets", ["parent_id"], ["id"],
                                 ondelete="SET NULL")
        batch.create_index("ix_tickets_parent_id", ["parent_id"])
    templates = op.create_table(
        "work_templates",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(80), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("fault_class", sa.String(16), nullable=True),
        sa.Column("device_kind", sa.String(40), nullable=True),
        sa.Column("fault_codes", sa.JSON(), nullable=False),
        sa.Column("tasks", sa.JSON(), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_by", sa.String(64), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_work_templates"),
        sa.UniqueConstraint("name", name="uq_work_templates_name"),
    )
    op.bulk_insert(templates, [{**CASE_OVER_TEMPERATURE, "updated_at": datetime(2026, 12, 2, tzinfo=UTC),
                                "updated_by": None}])


def downgrade() -> None:
    op.drop_table("work_templates")
    with op.batch_alter_table("tickets") as batch:
        batch.drop_index("ix_tickets_parent_id")
        batch.drop_constraint("fk_tickets_parent_id_tickets", type_="foreignkey")
        batch.drop_column("link")
        batch.drop_column("parent_id")
