"""Central against a real private Mosquitto: ingest, status downlink, rejections, restarts."""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from central.app import create_app
from central.clock import FakeClock
from central.db import Database, migrate
from central.ingest.consumer import MqttConsumer
from central.ingest.dead_letters import PoisonMessage
from central.ingest.models import DeadLetter, InboundMessage, InboxOutcome
from central.ingest.processor import Ingestor
from central.ingest.worker import InboxWorker
from central.metrics import Metrics
from central.outbox.models import OutboundMessage
from central.settings import CentralSettings
from device_profiles import ProfileRegistry
from protocols.mqtt.topics import TopicKind, topic
from tests.integration.central.mqtt_support import StoreSide
from tests.integration.central.support import fault, set_templates, tickets, wait_until
from tests.support.services import MosquittoProcess

pytestmark = pytest.mark.mosquitto


def settings_for(broker: MosquittoProcess, database_url: str, seed_path: Path | None, client_id: str,
                 **changes: object) -> CentralSettings:
    migrate(database_url)
    set_templates(database_url, enabled=False)  # one ticket per fault here, no linked store tasks
    return CentralSettings(database_url=database_url, mqtt_url=broker.url, mqtt_client_id=client_id,
                           seed_file=seed_path, mqtt_reconnect_min_s=0.2, mqtt_reconnect_max_s=1.0,
                           publisher_poll_s=0.2, **changes)  # type: ignore[arg-type]


@contextmanager
def running(settings: CentralSettings) -> Iterator[TestClient]:
    with TestClient(create_app(settings)) as client:
        runtime = client.app.state.runtime  # type: ignore[attr-defined]
        wait_until(lambda: runtime.consumer.connected and runtime.publisher.connected, timeout=10)
        yield client


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'central.db'}"


def test_a_fault_over_mqtt_becomes_a_ticket_and_its_status_comes_back(
    mosquitto_session: MosquittoProcess, database_url: str, seed_path: Path
) -> None:
    store = StoreSide(mosquitto_session.port, unique("store"))
    try:
        with running(settings_for(mosquitto_session, database_url, seed_path, unique("central"))) as client:
            runtime = client.app.state.runtime  # type: ignore[attr-defined]
            store.publish(fault(store=store.store_id))
            assigned = store.wait_for_status("assigned")
            assert assigned.assignee == "Tina Tech" and assigned.version == 2
            [ticket] = tickets(runtime.database)
            assert ticket.id == assigned.ticket_id and ticket.store_id == store.store_id
            # marked sent only on PUBACK
            def all_sent() -> bool:
                with runtime.database.session() as session:
                    return all(row.sent_at is not None for row in session.scalars(select(OutboundMessage)))
            wait_until(all_sent)
            assert runtime.metrics.value("storeguard_central_status_published_total") == 1
            assert client.get("/healthz").json()["mqtt"] == {"ingest": "connected", "publisher": "connected"}
            assert [s.version for s in store.statuses] == [2]  # created and assigned in one transaction
    finally:
        store.close()


def test_bad_payloads_are_rejected_counted_and_central_keeps_running(
    mosquitto_session: MosquittoProcess, sqlite_url: str, seed_path: Path
) -> None:
    store = StoreSide(mosquitto_session.port, unique("store"))
    other = unique("store")
    try:
        with running(settings_for(mosquitto_session, sqlite_url, seed_path, unique("central"))) as client:
            runtime = client.app.state.runtime  # type: ignore[attr-defined]
            fault_topic = topic(store.store_id, TopicKind.FAULT)
            good = fault(store=store.store_id)
            store.publish_raw(fault_topic, b"{definitely not json")
            store.publish_raw(fault_topic, json.dumps({"schema_version": 1, "kind": "fault"}).encode())
            store.publish_raw(topic(other, TopicKind.FAULT), good.to_bytes())  # payload says another store
            store.publish_raw("storeguard/v1/NOT_A_STORE/fault", good.to_bytes())
            store.publish_raw(topic(store.store_id, TopicKind.HEALTH), b"")
            store.publish(good)
            store.wait_for_status("assigned")
            counts = {reason: runtime.metrics.value("storeguard_central_messages_rejected_total", reason=reason)
                      for reason in ("bad_json", "schema", "store_mismatch", "bad_topic")}
            assert counts == {"bad_json": 2, "schema": 1, "store_mismatch": 1, "bad_topic": 1}
            assert len(tickets(runtime.database)) == 1
            assert client.get("/healthz").json()["status"] == "ok"
            metrics = client.get("/metrics").text
            assert 'storeguard_central_messages_rejected_total{reason="store_mismatch"} 1' in metrics
            assert "storeguard_central_ingest_queue_depth 0" in metrics
    finally:
        store.close()


@pytest.mark.parametrize("protocol", ["3.1.1", "5"])
def test_a_fault_published_while_central_is_down_is_processed_after_restart(
    mosquitto_session: MosquittoProcess, sqlite_url: str, seed_path: Path, protocol: str
) -> None:
    settings = settings_for(mosquitto_session, sqlite_url, seed_path, unique("central"), mqtt_protocol=protocol)
    store = StoreSide(mosquitto_session.port, unique("store"))
    try:
        with running(settings):
            pass  # the first start creates the persistent session and its subscriptions
        store.publish(fault(store=store.store_id))  # central is down: the broker queues it
        with running(settings) as client:
            runtime = client.app.state.runtime  # type: ignore[attr-defined]
            wait_until(lambda: tickets(runtime.database))
            store.wait_for_status("assigned")
            assert runtime.metrics.value("storeguard_central_messages_accepted_total", kind="fault") == 1
    finally:
        store.close()


def test_publisher_and_ingest_survive_a_broker_restart(mosquitto: MosquittoProcess, sqlite_url: str,
                                                       seed_path: Path) -> None:
    store = StoreSide(mosquitto.port, unique("store"))
    try:
        with running(settings_for(mosquitto, sqlite_url, seed_path, unique("central"))) as client:
            runtime = client.app.state.runtime  # type: ignore[attr-defined]
            store.publish(fault(store=store.store_id))
            assigned = store.wait_for_status("assigned")
            token = client.post("/api/v1/auth/token", json={"username": "tina", "password": "correct-horse-battery"})
            headers = {"Authorization": f"Bearer {token.json()['access_token']}"}

            mosquitto.stop()
            wait_until(lambda: not runtime.publisher.connected and not runtime.consumer.connected)
            accepted = client.post(f"/api/v1/tickets/{assigned.ticket_id}/accept", headers=headers)
            assert accepted.status_code == 200  # the API works with the broker down
            assert "storeguard_central_outbox_pending 1" in client.get("/metrics").text
            assert client.get("/healthz").json()["status"] == "degraded"

            mosquitto.start()
            status = store.wait_for_status("accepted", timeout=20)
            assert status.version == 3
            wait_until(lambda: "storeguard_central_outbox_pending 0" in client.get("/metrics").text)
            store.publish(fault(store=store.store_id, device="case-09"))  # ingest reconnected too
            wait_until(lambda: len(tickets(runtime.database)) == 2, timeout=20)
    finally:
        store.close()


class MemoryDeadLetters:
    """Stands in for the Ingestor's dead-letter table."""

    def __init__(self) -> None:
        self.letters: list[PoisonMessage] = []

    def dead_letter(self, message: PoisonMessage) -> None:
        self.letters.append(message)


class RecordingProcessor:
    """Stands in for the Ingestor's store step: records payloads, optionally holding the first one."""

    def __init__(self, hold_first: bool = False) -> None:
        self.payloads: list[bytes] = []
        self.release = threading.Event()
        if not hold_first:
            self.release.set()
        self._lock = threading.Lock()

    def store(self, _topic: str, payload: bytes) -> None:
        self.release.wait(20)
        with self._lock:
            self.payloads.append(payload)


@pytest.mark.parametrize("protocol", ["3.1.1", "5"])
def test_a_full_ingest_queue_drops_nothing(mosquitto_session: MosquittoProcess, protocol: str) -> None:
    """Queue of 1 and a stuck worker. MQTT 5: the broker is told to send one at a time
    (receive maximum). MQTT 3.1.1: the overflow is counted, left unacknowledged, and
    redelivered after the queue drained. Either way every message is processed."""
    settings = CentralSettings(mqtt_url=mosquitto_session.url, mqtt_client_id=unique("central"), ingest_queue_size=1,
                               mqtt_protocol=protocol, mqtt_reconnect_min_s=0.2, mqtt_reconnect_max_s=1.0)
    processor, metrics = RecordingProcessor(hold_first=True), Metrics()
    consumer = MqttConsumer(settings=settings, store=processor, dead_letters=MemoryDeadLetters(),
                            metrics=metrics, enqueue_timeout_s=0.05)
    consumer.start()
    store = StoreSide(mosquitto_session.port, unique("store"))
    try:
        assert consumer.wait_connected(10)
        sent = [fault(store=store.store_id, seq=i) for i in range(5)]
        for message in sent:
            store.publish(message)
        if protocol == "3.1.1":
            wait_until(lambda: metrics.value("storeguard_central_ingest_overflow_total") >= 1)
        processor.release.set()
        expected = {m.to_bytes() for m in sent}
        wait_until(lambda: expected <= set(processor.payloads), timeout=20)
        if protocol == "5":
            assert metrics.value("storeguard_central_ingest_overflow_total") == 0
    finally:
        store.close()
        consumer.stop()


def test_a_share_group_splits_messages_between_workers(mosquitto_session: MosquittoProcess) -> None:
    group = unique("grp")
    workers = []
    for _ in range(2):
        settings = CentralSettings(mqtt_url=mosquitto_session.url, mqtt_client_id=unique("central"),
                                   mqtt_share_group=group)
        processor = RecordingProcessor()
        consumer = MqttConsumer(settings=settings, store=processor, dead_letters=MemoryDeadLetters(),
                                metrics=Metrics())
        consumer.start()
        workers.append((consumer, processor))
    store = StoreSide(mosquitto_session.port, unique("store"))
    try:
        for consumer, _ in workers:
            assert consumer.wait_connected(10)
        sent = [fault(store=store.store_id, seq=i) for i in range(20)]
        for message in sent:
            store.publish(message)
        wait_until(lambda: sum(len(p.payloads) for _, p in workers) >= 20)
        received = [payload for _, p in workers for payload in p.payloads]
        assert sorted(received) == sorted(m.to_bytes() for m in sent)  # each exactly once
        assert all(p.payloads for _, p in workers)  # both workers took a share
    finally:
        store.close()
        for consumer, _ in workers:
            consumer.stop()


class FailingProcessor:
    """Raises the given errors in turn, then records like RecordingProcessor."""

    def __init__(self, *errors: Exception, forever: bool = False) -> None:
        self.errors = list(errors)
        self.forever = forever
        self.payloads: list[bytes] = []

    def store(self, _topic: str, payload: bytes) -> None:
        if self.forever:
            raise self.errors[0]
        if self.errors:
            raise self.errors.pop(0)
        self.payloads.append(payload)


def test_a_message_central_stops_retrying_is_not_acknowledged_and_is_redelivered(
    mosquitto_session: MosquittoProcess,
) -> None:
    from sqlalchemy.exc import OperationalError

    down = OperationalError("INSERT ...", {}, Exception("server closed the connection"))
    settings = CentralSettings(mqtt_url=mosquitto_session.url, mqtt_client_id=unique("central"))
    metrics, dead = Metrics(), MemoryDeadLetters()
    broken = MqttConsumer(settings=settings, store=FailingProcessor(down, forever=True), dead_letters=dead,
                          metrics=metrics, stop_drain_s=1.0)
    broken.start()
    store = StoreSide(mosquitto_session.port, unique("store"))
    try:
        assert broken.wait_connected(10)
        message = fault(store=store.store_id)
        store.publish(message)
        wait_until(lambda: metrics.value("storeguard_central_db_retries_total") >= 1)
        broken.stop()  # still retrying: the database never came back
        assert dead.letters == [] and metrics.value("storeguard_central_messages_failed_total") == 0
        fixed_processor = RecordingProcessor()
        fixed = MqttConsumer(settings=settings, store=fixed_processor, dead_letters=MemoryDeadLetters(),
                             metrics=Metrics())  # same session
        fixed.start()
        try:
            wait_until(lambda: fixed_processor.payloads == [message.to_bytes()])
        finally:
            fixed.stop()
    finally:
        store.close()


def test_transient_database_errors_are_retried_then_acknowledged(mosquitto_session: MosquittoProcess) -> None:
    from sqlalchemy.exc import OperationalError

    down = OperationalError("INSERT ...", {}, Exception("server closed the connection"))
    processor, metrics = FailingProcessor(down, down), Metrics()
    settings = CentralSettings(mqtt_url=mosquitto_session.url, mqtt_client_id=unique("central"))
    consumer = MqttConsumer(settings=settings, store=processor, dead_letters=MemoryDeadLetters(),
                            metrics=metrics)
    consumer.start()
    store = StoreSide(mosquitto_session.port, unique("store"))
    try:
        assert consumer.wait_connected(10)
        message = fault(store=store.store_id)
        store.publish(message)
        wait_until(lambda: processor.payloads == [message.to_bytes()])
        assert metrics.value("storeguard_central_db_retries_total") == 2
        assert metrics.value("storeguard_central_messages_failed_total") == 0
    finally:
        store.close()
        consumer.stop()


class PoisonedProfiles(ProfileRegistry):
    """The real profiles, except that looking up one model raises: a bug only some messages hit."""

    POISON = "poison-model"

    def __contains__(self, model: str) -> bool:
        if model == self.POISON:
            raise RuntimeError("a bug that only this device model triggers")
        return super().__contains__(model)


@pytest.fixture
def narrow_broker(mosquitto: MosquittoProcess) -> MosquittoProcess:
    """The test's private broker, restarted with only 5 unacknowledged messages in flight per client."""
    mosquitto.max_inflight_messages = 5
    mosquitto.restart()
    return mosquitto


def test_poison_messages_are_dead_lettered_and_ingest_continues(
    narrow_broker: MosquittoProcess, db: Database, metrics: Metrics, clock: FakeClock, profiles: ProfileRegistry
) -> None:
    """More poison messages than the broker's in-flight window, then a good fault: it still
    becomes a ticket. Every message is stored and acknowledged before it is applied; each
    poison message fails its attempts in the inbox and is moved to dead_letters."""
    settings = CentralSettings(mqtt_url=narrow_broker.url, mqtt_client_id=unique("central"))
    ingestor = Ingestor(database=db, profiles=PoisonedProfiles({m: profiles.get(m) for m in profiles.models()}),
                        metrics=metrics, clock=clock, max_attempts=settings.ingest_max_attempts, retry_delay_s=0)
    worker = InboxWorker(ingestor=ingestor, metrics=metrics, poll_s=0.2)
    worker.start()
    consumer = MqttConsumer(settings=settings, store=ingestor, dead_letters=ingestor, metrics=metrics,
                            clock=clock, retry_delay_s=0.01, on_stored=worker.wake)
    consumer.start()
    store = StoreSide(narrow_broker.port, unique("store"))
    try:
        assert consumer.wait_connected(10)
        poison = [fault(store=store.store_id, device=f"bad-{i}", model=PoisonedProfiles.POISON, seq=i)
                  for i in range(8)]
        for message in poison:
            store.publish(message)
        store.publish(fault(store=store.store_id, seq=100))
        # the good fault may be applied while poison messages still wait for their next attempt
        wait_until(lambda: len(tickets(db)) == 1
                   and metrics.value("storeguard_central_messages_dead_lettered_total") == 8, timeout=15)
        assert metrics.value("storeguard_central_messages_failed_total") == 8 * settings.ingest_max_attempts
        with db.session() as session:
            letters = {row.message_id: row for row in session.scalars(select(DeadLetter))}
        assert set(letters) == {m.message_id for m in poison}
        letter = letters[poison[0].message_id]
        assert letter.payload == poison[0].to_bytes() and letter.topic == topic(store.store_id, TopicKind.FAULT)
        assert letter.store_id == store.store_id and letter.attempts == settings.ingest_max_attempts
        assert "a bug that only this device model triggers" in letter.error
        assert letter.first_failed_at == letter.last_failed_at == clock.now()
        with db.session() as session:
            rows = {row.message_id: row for row in session.scalars(select(InboundMessage))}
        assert {rows[m.message_id].outcome for m in poison} == {InboxOutcome.DEAD_LETTERED}
        assert {rows[m.message_id].attempts for m in poison} == {settings.ingest_max_attempts}
        assert "a bug that only this device model triggers" in (rows[poison[0].message_id].last_error or "")
        assert ingestor.pending() == 0
    finally:
        store.close()
        consumer.stop()
        worker.stop()
