"""SLA: priority rules, SLA policies, store calendars; device criticality; paused tickets.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-23

Seeds the default priority rules (the fault class x severity table central used before,
adjusted by asset criticality) and one SLA policy per fault class x priority.

Hand-written and frozen, like 0001: plain SQLAlchemy types and literal seed rows, never
central's models or policy module (a later change to either must not change this file).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

FAULT_CLASSES = ("food_safety", "safety", "revenue", "equipment", "comfort")
SEVERITIES = ("critical", "major", "minor", "info")
# the fault class x severity priorities before this revision (an asset of "normal" criticality)
BASE_PRIORITY = {
    "food_safety": (1, 2, 4, 5),
    "safety": (1, 2, 4, 5),
    "revenue": (2, 3, 4, 5),
    "equipment": (2, 3, 4, 5),
    "comfort": (3, 4, 4, 5),
}
PROTECTIVE = ("food_safety", "safety")  # never made less urgent by a low criticality
# priority -> (response, arrival, resolution, accept window, escalation interval) in minutes
TARGETS = {
    1: (15, 120, 240, 15, 30),
    2: (30, 240, 480, 15, 60),
    3: (60, 480, 1440, 60, 120),
    4: (240, 1440, 2880, 240, 240),
    5: (480, 2880, 7200, 480, 480),
}


def _priority(fault_class: str, base: int, criticality: str) -> int:
    if criticality == "critical" or (criticality == "high" and fault_class in PROTECTIVE):
        return max(1, base - 1)  # e.g. a food-safety case full of goods: major -> 1
    if criticality == "low" and fault_class not in PROTECTIVE:
        return min(5, base + 1)
    return base


def _time(name: str, nullable: bool = False) -> sa.Column:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    rules = op.create_table(
        "priority_rules",
        sa.Column("fault_class", sa.String(16), nullable=False),
        sa.Column("severity", sa.String(16), nullable=False),
        sa.Column("criticality", sa.String(16), nullable=False),
        sa.Column("priority", sa.Integer(), nullable=False),
        sa.CheckConstraint("priority BETWEEN 1 AND 5", name="ck_priority_rules_priority_range"),
        sa.PrimaryKeyConstraint("fault_class", "severity", "criticality", name="pk_priority_rules"),
    )
    policies = op.create_table(
        "sla_policies",
        sa.Column("fault_class", sa.String(16), nullable=False),
        sa.Column("priority", sa.Integer(), nullable=False),
        sa.Column("response_min", sa.Integer(), nullable=False),
        sa.Column("arrival_min", sa.Integer(), nullable=False),
        sa.Column("resolution_min", sa.Integer(), nullable=False),
        sa.Column("business_hours", sa.Boolean(), nullable=False),
        sa.Column("accept_window_min", sa.Integer(), nullable=False),
        sa.Column("escalation_interval_min", sa.Integer(), nullable=False),
        _time("updated_at", nullable=True),
        sa.Column("updated_by", sa.String(64), nullable=True),
        sa.PrimaryKeyConstraint("fault_class", "priority", name="pk_sla_policies"),
    )
    op.create_table(
        "store_calendars",
        sa.Column("store_id", sa.String(63), nullable=False),
        sa.Column("timezone", sa.String(64), nullable=False),
        sa.Column("hours", sa.JSON(), nullable=False),
        sa.Column("holidays", sa.JSON(), nullable=False),
        _time("updated_at"),
        sa.Column("updated_by", sa.String(64), nullable=False),
        sa.ForeignKeyConstraint(["store_id"], ["stores.id"], name="fk_store_calendars_store_id_stores",
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("store_id", name="pk_store_calendars"),
    )
    with op.batch_alter_table("devices") as batch:
        batch.add_column(sa.Column("criticality", sa.String(16), nullable=False, server_default="normal"))
    with op.batch_alter_table("tickets") as batch:
        batch.add_column(sa.Column("paused_from", sa.String(16), nullable=True))
        batch.add_column(sa.Column("sla_signature", sa.String(80), nullable=True))

    op.bulk_insert(rules, [
        {"fault_class": fault_class, "severity": severity, "criticality": criticality,
         "priority": _priority(fault_class, BASE_PRIORITY[fault_class][i], criticality)}
        for fault_class in FAULT_CLASSES for i, severity in enumerate(SEVERITIES)
        for criticality in ("critical", "high", "normal", "low")
    ])
    op.bulk_insert(policies, [
        {"fault_class": fault_class, "priority": priority, "response_min": response, "arrival_min": arrival,
         "resolution_min": resolution, "accept_window_min": window, "escalation_interval_min": interval,
         # food safety always runs 24/7; other urgent work too; the rest only while the store is open
         "business_hours": fault_class != "food_safety" and priority >= 3,
         "updated_at": None, "updated_by": None}
        for fault_class in FAULT_CLASSES
        for priority, (response, arrival, resolution, window, interval) in TARGETS.items()
    ])


def downgrade() -> None:
    with op.batch_alter_table("tickets") as batch:
        batch.drop_column("sla_signature")
        batch.drop_column("paused_from")
    with op.batch_alter_table("devices") as batch:
        batch.drop_column("criticality")
    op.drop_table("store_calendars")
    op.drop_table("sla_policies")
    op.drop_table("priority_rules")
