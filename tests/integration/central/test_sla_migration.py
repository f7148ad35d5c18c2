"""Revision 0007 (SLA) seeds its tables and downgrades cleanly, keeping the open-ticket index."""

from __future__ import annotations

import pytest

from alembic import command
from sqlalchemy import inspect, text

from central.db import alembic_config, create_db_engine, migrate

pytestmark = pytest.mark.empty_database  # these tests migrate an empty database themselves


def test_sla_revision_seeds_downgrades_and_upgrades_again(database_url: str) -> None:
    migrate(database_url)
    engine = create_db_engine(database_url)
    try:
        with engine.connect() as connection:
            assert connection.execute(text("SELECT count(*) FROM priority_rules")).scalar_one() == 80
            assert connection.execute(text("SELECT count(*) FROM sla_policies")).scalar_one() == 25
            food = connection.execute(text("SELECT priority FROM priority_rules WHERE fault_class = 'food_safety' "
                                           "AND severity = 'major' AND criticality = 'high'")).scalar_one()
            assert food == 1
            assert connection.execute(text("SELECT count(*) FROM sla_policies WHERE fault_class = 'food_safety' "
                                           "AND business_hours")).scalar_one() == 0
        with engine.begin() as connection:
            command.downgrade(alembic_config(connection), "0006")
        with engine.connect() as connection:
            inspector = inspect(connection)
            assert not {"priority_rules", "sla_policies", "store_calendars"} & set(inspector.get_table_names())
            assert "criticality" not in {c["name"] for c in inspector.get_columns("devices")}
            assert "paused_from" not in {c["name"] for c in inspector.get_columns("tickets")}
            indexes = {i["name"]: i for i in inspector.get_indexes("tickets")}
            assert indexes["uq_tickets_open_fault"]["unique"]
        migrate(database_url)
        with engine.connect() as connection:
            assert connection.execute(text("SELECT count(*) FROM priority_rules")).scalar_one() == 80
    finally:
        engine.dispose()
