"""The retention job: old rows go in bounded batches, newer rows stay, one pass at a time."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from pydantic import ValidationError
from sqlalchemy import func, insert, select, text

from central.app import create_app
from central.auth.models import ApiToken, User
from central.clock import FakeClock
from central.db import Database
from central.ingest.models import InboundMessage
from central.maintenance import MAINTENANCE_LOCK_KEY, Retention, prune
from central.outbox.models import OutboundMessage
from central.settings import CentralSettings
from central.telemetry.models import HaccpInterval, telemetry_samples
from storeguard import cli
from tests.integration.central.support import T0, wait_until

DAY = timedelta(days=1)
RETENTION = Retention(telemetry_days=30, haccp_days=730, inbound_days=14, outbound_days=14, batch_rows=4)


def _haccp(at: datetime, point: str) -> dict[str, object]:
    return {"store_id": "s1", "device_id": "case-01", "point": point, "interval_start": at, "interval_s": 900,
            "unit": "°C", "samples": 1, "value_sum": 4.0, "value_min": 4.0, "value_max": 4.0, "high_limit": 8.0,
            "above_limit_samples": 0, "defrost_samples": 0, "door_open_samples": 0, "probe_fault_samples": 0,
            "stale_samples": 0, "updated_at": at}


def fill(db: Database, now: datetime, *, tokens: bool = True) -> dict[str, int]:
    """Rows either side of each horizon; returns how many of each table are past it."""
    samples = [{"store_id": "s1", "device_id": "case-01", "point": f"p{i}", "taken_at": now - age, "value": 1.0,
                "state": None, "quality": "good", "unit": ""}
               for i in range(5) for age in (31 * DAY, 40 * DAY, 29 * DAY)]  # 10 old, 5 new
    haccp = [_haccp(now - age, f"p{i}") for i in range(3) for age in (731 * DAY, 729 * DAY)]  # 3 old, 3 new
    inbound = [{"message_id": f"m{i}-{age.days}", "store_id": "s1", "kind": "telemetry", "seq": i,
                "received_at": now - age, "state": "processed", "processed_at": now - age, "outcome": "applied"}
               for i in range(6) for age in (15 * DAY, 13 * DAY)]  # 6 old, 6 new
    inbound.append({"message_id": "pending-old", "store_id": "s1", "kind": "telemetry", "seq": 9,
                    "received_at": now - 20 * DAY, "state": "pending", "processed_at": None, "outcome": None,
                    "topic": "storeguard/v1/s1/telemetry", "payload": b"{}"})  # stored, never applied: stays
    outbound = [{"message_id": f"o{i}", "store_id": "s1", "topic": "t", "payload": "{}", "created_at": now - age,
                 "sent_at": sent} for i, (age, sent) in enumerate([
                     (20 * DAY, now - 20 * DAY), (15 * DAY, now - 15 * DAY),  # sent long ago: go
                     (20 * DAY, None),  # never sent: stays, however old
                     (13 * DAY, now - 13 * DAY)])]  # sent recently: stays
    with db.session() as session, session.begin():
        user_id = session.scalars(select(User.id).limit(1)).one() if tokens else 0
        token_rows = [{"user_id": user_id, "token_hash": f"{i:064d}", "created_at": now - DAY, "expires_at": expires}
                  for i, expires in enumerate([now - timedelta(seconds=1), now - DAY, now + DAY])]
        session.execute(insert(telemetry_samples), samples)
        session.execute(insert(HaccpInterval), haccp)
        session.execute(insert(InboundMessage), inbound)
        session.execute(insert(OutboundMessage), outbound)
        if tokens:
            session.execute(insert(ApiToken), token_rows)
    return {"telemetry_samples": 10, "haccp_intervals": 3, "inbound_messages": 6, "outbound_messages": 2,
            "api_tokens": 2}


def counts(db: Database) -> dict[str, int]:
    with db.session() as session:
        tables: list[tuple[str, Any]] = [
            ("telemetry_samples", telemetry_samples), ("haccp_intervals", HaccpInterval),
            ("inbound_messages", InboundMessage), ("outbound_messages", OutboundMessage), ("api_tokens", ApiToken)]
        return {name: session.scalar(select(func.count()).select_from(table)) or 0 for name, table in tables}


def test_a_pass_deletes_what_is_past_its_horizon_in_batches(db: Database) -> None:
    before = counts(db)
    old = fill(db, T0)
    filled = counts(db)
    batches: list[tuple[str, int]] = []
    result = prune(database=db, retention=RETENTION, now=T0, on_batch=lambda t, n: batches.append((t, n)))
    assert not result.skipped
    assert result.deleted == old
    assert counts(db) == {name: filled[name] - old[name] for name in filled}
    assert max(n for _, n in batches) == RETENTION.batch_rows  # bounded statements
    assert [n for t, n in batches if t == "telemetry_samples"] == [4, 4, 2]
    with db.session() as session:
        assert session.scalar(select(func.min(telemetry_samples.c.taken_at))) == T0 - 29 * DAY
        unsent = session.scalars(select(OutboundMessage.message_id).where(OutboundMessage.sent_at.is_(None))).all()
        assert unsent == ["o2"]
    again = prune(database=db, retention=RETENTION, now=T0)
    assert again.total == 0 and counts(db)["api_tokens"] == before["api_tokens"] + 1


def test_one_pass_at_a_time_across_workers(postgres_url: str) -> None:
    from central.db import migrate

    migrate(postgres_url)
    db = Database(postgres_url)
    try:
        with db.engine.connect() as other_worker:
            other_worker.execute(text("SELECT pg_advisory_lock(:k)"), {"k": MAINTENANCE_LOCK_KEY})
            other_worker.commit()
            assert prune(database=db, retention=RETENTION, now=T0).skipped
            other_worker.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": MAINTENANCE_LOCK_KEY})
            other_worker.commit()
        assert not prune(database=db, retention=RETENTION, now=T0).skipped
    finally:
        db.dispose()


def test_central_runs_a_pass_in_its_own_thread_at_start(database_url: str, seed_path: Path, clock: FakeClock) -> None:
    from central.db import migrate

    migrate(database_url)
    db = Database(database_url)
    try:
        fill(db, clock.now(), tokens=False)  # no users yet: the seed comes with central
        settings = CentralSettings(database_url=database_url, mqtt_enabled=False, seed_file=seed_path)
        app = create_app(settings, clock=clock)
        with TestClient(app):
            assert app.state.runtime.maintenance is not None  # a thread of this worker
            wait_until(lambda: counts(db)["telemetry_samples"] == 5, timeout=10)
        assert app.state.runtime.maintenance is None  # stopped with central
        assert counts(db)["inbound_messages"] == 7  # 6 new, and the old one still pending
    finally:
        db.dispose()


def test_storeguard_central_prune(db: Database, capsys: pytest.CaptureFixture[str]) -> None:
    old = fill(db, datetime.now(T0.tzinfo))
    assert cli.main(["central", "prune", "--database-url", db.url]) == 0
    out = capsys.readouterr().out
    assert f"telemetry_samples: {old['telemetry_samples']} rows deleted" in out
    assert f"inbound_messages: {old['inbound_messages']} rows deleted" in out
    assert counts(db)["telemetry_samples"] == 5


def test_the_ledger_must_outlive_the_brokers_redelivery_horizon() -> None:
    with pytest.raises(ValidationError, match="inbound_retention_days"):
        CentralSettings(inbound_retention_days=3, mqtt_session_expiry_s=7 * 86_400)
    with pytest.raises(ValidationError, match="haccp_interval_s must divide a day"):
        CentralSettings(haccp_interval_s=7 * 60)
    assert CentralSettings(inbound_retention_days=7, mqtt_session_expiry_s=7 * 86_400).inbound_retention_days == 7
