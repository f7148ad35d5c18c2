"""Notifications on a real database: written in the change's transaction, delivered through the log and a
signed webhook (a real local HTTP server), retried with backoff, given up, never delivered twice by two
loops, produced by SLA escalations, and the settings that configure them."""

from __future__ import annotations

import json
import logging
import threading
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from pydantic import ValidationError
from sqlalchemy import select

from central.app import timer_registry
from central.auth.models import Role, User
from central.clock import FakeClock
from central.db import Database
from central.ingest.processor import Ingestor
from central.notify import service as notify
from central.notify.channels import (
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    DeliveryError,
    LogNotifier,
    WebhookNotifier,
    sign,
    verify_signature,
)
from central.notify.loop import NotifyLoop
from central.notify.models import Delivery, Kind, Notification, State
from central.settings import CentralSettings
from central.stores.models import Store
from central.tickets import service as tickets
from central.tickets.models import EventType, Source, TicketEvent
from central.tickets.policy import Action
from central.timers import service as timers
from storeguard.stack import free_port
from tests.integration.central.support import T0, fault, send

SECRET = "s3cret-for-tests-only"


# --- helpers ------------------------------------------------------------------------------------
@dataclass
class Recorder:
    """A notifier that records what it was given (and can be told to fail)."""

    delivered: list[int] = field(default_factory=list)
    fail_with: str | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)

    def deliver(self, notification: Delivery) -> None:
        if self.fail_with:
            raise DeliveryError(self.fail_with)
        with self.lock:
            self.delivered.append(notification.id)

    def close(self) -> None:
        pass


@dataclass
class Received:
    headers: dict[str, str]
    body: bytes


class WebhookServer:
    """A real HTTP server on a free local port answering POSTs with the statuses it is given."""

    def __init__(self, statuses: list[int] | None = None) -> None:
        self.received: list[Received] = []
        self.statuses = list(statuses or [])
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                server.received.append(Received(dict(self.headers.items()), body))
                status = server.statuses.pop(0) if server.statuses else 204
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *_args: Any) -> None:
                pass

        self.port = free_port()
        self._httpd = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hooks/storeguard"

    def __enter__(self) -> WebhookServer:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()


def _enqueue(db: Database, count: int = 1, *, channels: tuple[str, ...] | None = None) -> None:
    with db.session() as session, session.begin():
        if channels is not None:
            session.info[notify.CHANNELS_KEY] = channels
        for n in range(count):
            notify.enqueue(session=session, kind=Kind.TICKET_STATUS, payload={"n": n}, recipients=["tina"], now=T0,
                           store_id="store-1")


def _rows(db: Database) -> list[Notification]:
    with db.session() as session:
        return list(session.scalars(select(Notification).order_by(Notification.id)))


def _loop(db: Database, clock: FakeClock, **notifiers: Any) -> NotifyLoop:
    return NotifyLoop(database=db, notifiers=notifiers, clock=clock, batch_size=3)


@pytest.fixture
def webhook() -> Iterator[WebhookServer]:
    with WebhookServer() as server:
        yield server


# --- writing ------------------------------------------------------------------------------------
def test_a_rolled_back_change_notifies_nobody(db: Database, clock: FakeClock) -> None:
    woken: list[bool] = []
    notify.on_commit(db, lambda: woken.append(True))
    with pytest.raises(RuntimeError), db.session() as session, session.begin():
        notify.enqueue(session=session, kind=Kind.TICKET_STATUS, payload={}, recipients=["tina"], now=T0)
        raise RuntimeError("the change failed")
    recorder = Recorder()
    assert _loop(db, clock, log=recorder).run_once().delivered == 0
    assert _rows(db) == [] and recorder.delivered == [] and woken == []
    _enqueue(db)
    assert woken == [True]  # a committed notification wakes the loop


def test_one_row_per_enabled_channel_and_none_when_disabled(db: Database) -> None:
    notify.configure(db, channels=("log", "webhook"))
    _enqueue(db)
    assert sorted(r.channel for r in _rows(db)) == ["log", "webhook"]
    notify.configure(db, channels=())
    _enqueue(db)
    assert len(_rows(db)) == 2


# --- delivering ---------------------------------------------------------------------------------
def test_the_log_notifier_delivers_one_line_each(db: Database, clock: FakeClock,
                                                 caplog: pytest.LogCaptureFixture) -> None:
    _enqueue(db, 4)
    caplog.set_level(logging.INFO, logger="central.notify")
    result = _loop(db, clock, log=LogNotifier()).run_once()
    assert result.delivered == 4
    lines = [r for r in caplog.records if r.getMessage().startswith("notification id=")]
    assert len(lines) == 4 and all(r.levelno == logging.INFO and "recipients=tina" in r.getMessage() for r in lines)
    assert {r.state for r in _rows(db)} == {State.DELIVERED}
    assert all(r.delivered_at == T0 for r in _rows(db))
    assert _loop(db, clock, log=LogNotifier()).run_once().delivered == 0


def test_the_webhook_posts_signed_json(db: Database, clock: FakeClock, webhook: WebhookServer) -> None:
    _enqueue(db, channels=("webhook",))
    notifier = WebhookNotifier(webhook.url, SECRET, 5.0, clock=clock)
    try:
        assert _loop(db, clock, webhook=notifier).run_once().delivered == 1
    finally:
        notifier.close()
    [request] = webhook.received
    timestamp, signature = request.headers[TIMESTAMP_HEADER], request.headers[SIGNATURE_HEADER]
    assert signature.startswith("sha256=")
    assert verify_signature(SECRET, timestamp, request.body, signature, tolerance_s=300, now=T0.timestamp())
    assert not verify_signature("wrong", timestamp, request.body, signature, tolerance_s=300, now=T0.timestamp())
    assert not verify_signature(SECRET, timestamp, request.body + b" ", signature, 300, T0.timestamp())
    assert not verify_signature(SECRET, timestamp, request.body, signature, 300, T0.timestamp() + 301)  # replayed
    document = json.loads(request.body)
    [row] = _rows(db)
    assert document["id"] == row.id and document["kind"] == "ticket.status" and document["n"] == 0
    assert document["recipients"] == ["tina"] and document["sent_at"] == T0.isoformat()
    assert request.headers["Content-Type"] == "application/json"


def test_a_failing_webhook_is_retried_with_backoff_then_delivered(db: Database, clock: FakeClock) -> None:
    with WebhookServer([500, 503]) as server:
        _enqueue(db, channels=("webhook",))
        notifier = WebhookNotifier(server.url, SECRET, 5.0, clock=clock)
        loop = _loop(db, clock, webhook=notifier)
        try:
            assert loop.run_once().retried == 1
            [row] = _rows(db)
            assert (row.attempts, row.next_attempt_at, row.state) == (1, T0 + timedelta(seconds=5), State.PENDING)
            assert "status:500" in (row.last_error or "")
            clock.advance(4.9)
            assert loop.run_once().retried == 0  # not due yet
            clock.advance(0.1)
            assert loop.run_once().retried == 1
            assert _rows(db)[0].next_attempt_at == clock.now() + timedelta(seconds=30)
            clock.advance(30)
            assert loop.run_once().delivered == 1
        finally:
            notifier.close()
        assert len(server.received) == 3
        assert len({json.loads(r.body)["id"] for r in server.received}) == 1  # the same id: receivers dedupe
    [row] = _rows(db)
    assert row.state is State.DELIVERED and row.attempts == 2


def test_an_unreachable_webhook_is_given_up_after_the_last_retry(db: Database, clock: FakeClock,
                                                                 caplog: pytest.LogCaptureFixture) -> None:
    _enqueue(db, channels=("webhook",))
    notifier = WebhookNotifier(f"http://127.0.0.1:{free_port()}/nobody-listens", SECRET, 2.0, clock=clock)
    loop = _loop(db, clock, webhook=notifier)
    caplog.set_level(logging.DEBUG, logger="central.notify")
    try:
        for delay in notify.RETRY_DELAYS_S:  # 5 s, 30 s, 2 min, 10 min, 1 h
            assert loop.run_once().retried == 1
            assert _rows(db)[0].next_attempt_at == clock.now() + timedelta(seconds=delay)
            clock.advance(delay)
        assert loop.run_once().failed == 1
        clock.advance(86_400)
        assert loop.run_once().failed == 0  # kept, never tried again
    finally:
        notifier.close()
    [row] = _rows(db)
    assert row.state is State.FAILED and row.attempts == notify.MAX_ATTEMPTS == 6
    assert "transport:ConnectError" in (row.last_error or "")
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert [r.levelname for r in warnings] == ["WARNING", "ERROR"]  # once per reason; repeats at DEBUG
    with db.session() as session:
        assert notify.count_failed(session=session) == 1 and notify.count_pending(session=session) == 0


def test_two_loops_never_deliver_one_row_twice(db: Database, clock: FakeClock) -> None:
    _enqueue(db, 40)
    first, second = Recorder(), Recorder()
    loops = [_loop(db, clock, log=first), _loop(db, clock, log=second)]
    start = threading.Barrier(2)

    def run(loop: NotifyLoop) -> None:
        start.wait()
        loop.run_once()

    threads = [threading.Thread(target=run, args=(loop,)) for loop in loops]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    counts = Counter(first.delivered + second.delivered)
    assert len(counts) == 40 and set(counts.values()) == {1}
    assert {r.state for r in _rows(db)} == {State.DELIVERED}


def test_a_claimed_row_is_leased_to_its_claimer(db: Database) -> None:
    _enqueue(db, 2)
    with db.session() as session, session.begin():
        claimed = notify.claim_due(session=session, now=T0, limit=10, channels=["log"], lease_s=60)
    assert len(claimed) == 2
    with db.session() as session, session.begin():  # another worker, during the delivery
        assert notify.claim_due(session=session, now=T0 + timedelta(seconds=59), limit=10, channels=["log"],
                                lease_s=60) == []
    with db.session() as session, session.begin():  # the claimer died: due again when the lease ends
        again = notify.claim_due(session=session, now=T0 + timedelta(seconds=60), limit=10, channels=["log"],
                                 lease_s=60)
    assert [d.id for d in again] == [d.id for d in claimed]


def test_postgres_claims_skip_rows_another_worker_holds(db: Database) -> None:
    if db.dialect != "postgresql":
        pytest.skip("SQLite has one writer at a time: the second claim waits instead of skipping")
    _enqueue(db, 4)
    with db.session() as first, first.begin():
        mine = notify.claim_due(session=first, now=T0, limit=2, channels=["log"], lease_s=60)
        with db.session() as second, second.begin():
            theirs = notify.claim_due(session=second, now=T0, limit=10, channels=["log"], lease_s=60)
    assert len(mine) == 2 and len(theirs) == 2 and not {d.id for d in mine} & {d.id for d in theirs}


def test_a_loop_claims_only_the_channels_it_delivers(db: Database, clock: FakeClock) -> None:
    notify.configure(db, channels=("log", "webhook"))
    _enqueue(db)
    assert _loop(db, clock, log=Recorder()).run_once().delivered == 1
    assert [(r.channel, r.state) for r in _rows(db)] == [("log", State.DELIVERED), ("webhook", State.PENDING)]


# --- ticket events ------------------------------------------------------------------------------
def _open_ticket(ingestor: Ingestor) -> int:
    result = send(ingestor, fault())
    assert result.created_ticket_id is not None
    return result.created_ticket_id


def test_for_ticket_event_builds_the_payload_and_tells_the_assignee(db: Database, ingestor: Ingestor) -> None:
    ticket_id = _open_ticket(ingestor)  # auto-assigned to tina
    with db.session() as session, session.begin():
        ticket = tickets.get(session=session, ticket_id=ticket_id, for_update=True)
        event = TicketEvent(ticket_id=ticket.id, at=T0, client_at=None, type=EventType.ACCEPTED, from_status=None,
                            to_status=None, actor="tina", source=Source.API, note="on it", data={"eta_min": 30})
        session.add(event)
        assert notify.for_ticket_event(session=session, ticket=ticket, event=event, now=T0,
                                       recipients=["tina", "dora"]) == 1
    *earlier, row = _rows(db)
    assert [r.payload["event"]["type"] for r in earlier] == ["assigned"]  # the auto-assignment told tina
    assert (row.kind, row.ticket_id, row.store_id, row.recipients) == ("ticket.status", ticket_id, "store-1",
                                                                      ["tina", "dora"])
    assert row.payload["ticket"] == {
        "id": ticket_id, "number": f"T-{ticket_id:06d}", "store_id": "store-1", "device_id": "case-01",
        "fault_code": "high_temperature", "title": row.payload["ticket"]["title"], "status": "assigned",
        "priority": row.payload["ticket"]["priority"], "assignee": "tina", "assignee_name": "Tina Tech"}
    assert row.payload["event"] == {"type": "accepted", "note": "on it", "data": {"eta_min": 30},
                                    "at": T0.isoformat()}


def test_an_sla_escalation_notifies_the_assignee_then_the_supervisor(db: Database, ingestor: Ingestor) -> None:
    registry = timer_registry()
    ticket_id = _open_ticket(ingestor)  # food safety, major: arrival due at 240 min, next level 60 min later
    with db.session() as session, session.begin():
        session.get_one(Store, "store-1").region = "north"
        session.add(User(username="sue", display_name="Sue", role=Role.SUPERVISOR, password_hash="x", active=True,
                         created_at=T0, region="north"))
        ticket = tickets.get(session=session, ticket_id=ticket_id, for_update=True)
        for minute, action in ((1, Action.ACCEPT), (2, Action.EN_ROUTE)):
            tickets.perform(session=session, ticket=ticket, action=action, now=T0 + timedelta(minutes=minute),
                            source=Source.API, actor="tina")
    for minute in (120, 180, 240, 300):
        timers.run_pass(database=db, registry=registry, now=T0 + timedelta(minutes=minute))
    rows = [r for r in _rows(db) if r.ticket_id == ticket_id]
    escalations = [(r.payload["event"]["data"]["level"], r.recipients) for r in rows
                   if r.kind == Kind.TICKET_ESCALATED]
    assert escalations == [(1, ["tina"]), (2, ["tina", "sue"])]
    warnings = [r for r in rows if r.kind == Kind.TICKET_SLA_WARNING]
    assert [(r.payload["event"]["data"]["target"], r.payload["event"]["data"]["stage"]) for r in warnings] == [
        ("arrival", "warn50"), ("arrival", "warn75"), ("resolution", "warn50")]
    assert all(r.recipients == ["tina"] for r in warnings)
    assert all(r.channel == "log" and r.state is State.PENDING for r in rows)


# --- wiring and settings ------------------------------------------------------------------------
def test_central_exports_the_pending_gauge(client: TestClient) -> None:
    text = client.get("/metrics").text
    assert "storeguard_central_notifications_pending 0" in text
    assert "storeguard_central_notifications_failed 0" in text
    assert client.app.state.runtime.notifier is not None  # type: ignore[attr-defined]


def test_settings_channels_from_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    assert CentralSettings().notify_channels == ("log",)
    monkeypatch.setenv("STOREGUARD_NOTIFY_CHANNELS", "log, webhook")
    monkeypatch.setenv("STOREGUARD_NOTIFY_WEBHOOK_URL", "https://hooks.example.test/storeguard")
    secret_file = tmp_path / "webhook.key"
    secret_file.write_text(SECRET + "\n")
    monkeypatch.setenv("STOREGUARD_NOTIFY_WEBHOOK_SECRET_FILE", str(secret_file))
    settings = CentralSettings()
    assert settings.notify_channels == ("log", "webhook")
    assert settings.notify_webhook_key is not None and settings.notify_webhook_key.get_secret_value() == SECRET
    assert SECRET not in repr(settings)


@pytest.mark.parametrize(("changes", "message"), [
    ({"notify_channels": "webhook"}, "STOREGUARD_NOTIFY_WEBHOOK_URL"),
    ({"notify_channels": "webhook", "notify_webhook_url": "https://h.example.test/x"},
     "STOREGUARD_NOTIFY_WEBHOOK_SECRET"),
    ({"notify_channels": "webhook", "notify_webhook_url": "ftp://h.example.test/x", "notify_webhook_secret": SECRET},
     "http(s)://"),
    ({"notify_channels": "sms"}, "notify_channels"),
    ({"notify_webhook_secret": SECRET, "notify_webhook_secret_file": "/nonexistent"}, "not both"),
    ({"notify_webhook_secret_file": "/nonexistent/webhook.key"}, "cannot be read"),
    ({"environment": "production", "mqtt_enabled": False, "notify_channels": "webhook",
      "notify_webhook_url": "https://h.example.test/x", "notify_webhook_secret": "changeme"}, "placeholder"),
])
def test_settings_refuse_an_incomplete_webhook(changes: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message.replace("(", r"\(").replace(")", r"\)")):
        CentralSettings(**changes)


def test_settings_accept_a_disabled_webhook_without_url() -> None:
    assert CentralSettings(notify_enabled=False, notify_channels=("webhook",)).notify_channels == ("webhook",)


def test_signatures_are_hex_hmac_sha256_of_timestamp_dot_body() -> None:
    import hashlib
    import hmac

    expected = hmac.new(b"k", b"1700000000.{}", hashlib.sha256).hexdigest()
    assert sign("k", "1700000000", b"{}") == f"sha256={expected}"
    assert not verify_signature("k", "not-a-time", b"{}", sign("k", "1", b"{}"), 300, 1.0)
