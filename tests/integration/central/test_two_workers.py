"""Two central worker processes on one Mosquitto ($share) and one PostgreSQL: the load splits, nothing doubles.

Real `storeguard central` processes (one share group, their own client ids), 50 stores each
on its own MQTT connection, two devices faulting per store. Per fault: a raise, a repeat
raise published right behind it (so the two workers get one each and race on the same
fault), a redelivery of the first raise (same message_id), and for every other fault a
clear. Checked in the database and at the stores: each message stored once and applied
once, both workers applied some, one ticket per fault with one "created" and at most one
"assigned", every raise accounted for, each status version published once and the latest
one received by its store. And both workers' timer loops on the same due SLA timers: each
warning, escalation level and reassignment recorded once.
"""

from __future__ import annotations

import json
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from sqlalchemy import text

from benchmarks.central_cluster import CentralCluster, close_clients, mqtt_client
from protocols.mqtt.messages import FaultEvent, TicketStatus
from protocols.mqtt.topics import TopicKind, topic
from tests.support.services import MosquittoProcess, PostgresCluster

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(120)]
STORES, DEVICES = 50, 2


def _event(store: str, device: str, seq: int, state: str, at: datetime) -> FaultEvent:
    return FaultEvent.model_validate(dict(
        store_id=store, seq=seq, device_id=device, device_model="dixell-xr75cx", fault_code="high_temperature",
        state=state, severity="major", fault_class="food_safety", ticket_class="repair", occurred_at=at,
        description="Cabinet air above the high limit", location="Aisle 1",
        evidence={"point": "air_temp", "value": 9.4, "limit": 8.0}))


def test_two_workers_split_the_load_and_double_nothing(
        tmp_path: Path, mosquitto_session: MosquittoProcess, postgres_cluster: PostgresCluster) -> None:  # fmt: skip
    # the session services only gate the test (skipped, or failed in CI, when a binary is missing);
    # the cluster starts private ones it can kill
    received: dict[str, list[TicketStatus]] = defaultdict(list)
    lock = threading.Lock()

    def on_status(_c: mqtt.Client, _u: Any, message: mqtt.MQTTMessage) -> None:
        status = TicketStatus.model_validate_json(message.payload)
        with lock:
            received[status.store_id].append(status)

    with CentralCluster(tmp_path, durable=False) as cluster:
        stores = [f"store-{i:02d}" for i in range(STORES)]
        clients = [mqtt_client(f"gw-{s}", cluster.broker.port, on_message=on_status,
                               subscribe=topic(s, TopicKind.TICKET_STATUS)) for s in stores]
        try:
            t0 = datetime.now(UTC)
            published, distinct, cleared = 0, set(), set()
            infos = []
            for client, store in zip(clients, stores, strict=True):
                for d in range(DEVICES):
                    device = f"case-{d}"
                    first = _event(store, device, 1, "raised", t0)
                    burst = [first, _event(store, device, 2, "raised", t0 + timedelta(seconds=1)), first]
                    if d % 2 == 0:
                        burst.append(_event(store, device, 3, "cleared", t0 + timedelta(seconds=2)))
                        cleared.add((store, device))
                    for event in burst:
                        infos.append(client.publish(topic(store, TopicKind.FAULT), event.to_bytes(), qos=1))
                        distinct.add(event.message_id)
                        published += 1
            for info in infos:
                info.wait_for_publish(10)

            deadline = time.monotonic() + 40
            while time.monotonic() < deadline:
                applied = cluster.scalar("SELECT count(*) FROM inbound_messages WHERE state = 'processed'")
                unsent = cluster.scalar("SELECT count(*) FROM outbound_messages WHERE sent_at IS NULL")
                if applied >= len(distinct) and unsent == 0:
                    break
                time.sleep(0.3)

            # every message stored once (the redeliveries were not), all applied
            assert cluster.scalar("SELECT count(*) FROM inbound_messages") == len(distinct)
            assert cluster.scalar("SELECT count(*) FROM inbound_messages WHERE state <> 'processed' "
                                  "OR outcome = 'dead_lettered'") == 0
            accepted = [cluster.counter(i, "storeguard_central_messages_accepted_total", kind="fault")
                        for i in range(2)]
            duplicates = [cluster.counter(i, "storeguard_central_messages_duplicate_total") for i in range(2)]
            assert sum(accepted) == len(distinct) and sum(duplicates) == published - len(distinct)
            assert min(accepted) > 0, f"the shared subscription did not split the load: {accepted}"

            # one ticket per fault (its linked store tasks aside), created once, assigned at most once
            tickets = cluster.rows("SELECT id, store_id, device_id, raise_count, fault_active, version, status "
                                   "FROM tickets WHERE device_id LIKE 'case-%' AND link IS DISTINCT FROM 'task'")
            assert len(tickets) == STORES * DEVICES
            assert len({(t.store_id, t.device_id) for t in tickets}) == len(tickets)
            events = cluster.rows("SELECT ticket_id, type, data FROM ticket_events")
            kinds = Counter((e.ticket_id, e.type) for e in events)
            for ticket in tickets:
                assert kinds[(ticket.id, "created")] == 1, ticket
                assert kinds[(ticket.id, "assigned")] <= 1, ticket
                late_raises = [e for e in events if e.ticket_id == ticket.id and e.type == "out_of_order"
                               and _data(e.data).get("seq") in (1, 2)]
                assert ticket.raise_count + len(late_raises) == 2, ticket  # each distinct raise counted once
                assert ticket.fault_active is ((ticket.store_id, ticket.device_id) not in cleared), ticket

            # each status version published once; the store got the latest one
            outbox = [json.loads(p) for p in (r.payload for r in cluster.rows(
                "SELECT payload FROM outbound_messages WHERE ticket_id IS NOT NULL"))]
            versions = Counter((m["ticket_id"], m["version"]) for m in outbox)
            assert max(versions.values()) == 1, [k for k, n in versions.items() if n > 1]
            with lock:
                latest = {(s.ticket_id): max(v.version for v in statuses if v.ticket_id == s.ticket_id)
                          for statuses in received.values() for s in statuses}
            for ticket in tickets:
                assert latest.get(ticket.id) == ticket.version, ticket
        finally:
            close_clients(clients)


def _data(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else json.loads(value)


ESCALATING = 30  # stores, one overdue repair each


def test_two_workers_fire_each_warning_escalation_and_reassignment_once(
        tmp_path: Path, mosquitto_session: MosquittoProcess, postgres_cluster: PostgresCluster) -> None:  # fmt: skip
    """Both processes' timer loops claim the same due SLA timers at once: every warning, every
    escalation level and every accept-window reassignment is recorded exactly once, and both
    workers fired some."""
    with CentralCluster(tmp_path, durable=False) as cluster:
        stores = [f"store-{i:02d}" for i in range(ESCALATING)]
        clients = [mqtt_client(f"gw-{s}", cluster.broker.port) for s in stores]
        try:
            now = datetime.now(UTC)
            infos = [client.publish(topic(store, TopicKind.FAULT), _event(store, "case-0", 1, "raised", now).to_bytes(),
                                    qos=1) for client, store in zip(clients, stores, strict=True)]
            for info in infos:
                info.wait_for_publish(10)
            _wait(lambda: cluster.scalar("SELECT count(*) FROM tickets WHERE device_id = 'case-0' "
                                         "AND status = 'assigned'") == ESCALATING, "tickets assigned")
            # twelve hours pass in a moment: every SLA target of every ticket is breached, nobody accepted
            with cluster.engine.begin() as connection:
                connection.execute(text("UPDATE tickets SET created_at = created_at - interval '12 hours'"))
                connection.execute(text("UPDATE ticket_events SET at = at - interval '12 hours'"))
                connection.execute(text("UPDATE timers SET due_at = now() WHERE ticket_id IS NOT NULL"))

            def state() -> list[Any]:  # what a timeout shows
                return cluster.rows("SELECT type, data->>'target' AS target, data->>'level' AS level, count(*) "
                                    "FROM ticket_events GROUP BY 1, 2, 3 ORDER BY 1, 2, 3")

            targets = 3  # response, arrival, resolution: all breached
            for level in (1, 2):
                _wait(lambda: cluster.scalar("SELECT count(*) FROM ticket_events WHERE type = 'escalated'")
                      >= ESCALATING * targets * level, f"escalation level {level} of every target", state=state)
                time.sleep(2)  # a few more passes of both loops: nothing more may fire
                if level == 2:
                    break
                # the next level is due an escalation interval after this one: that passes too
                with cluster.engine.begin() as connection:
                    connection.execute(text("UPDATE ticket_events SET at = at - interval '2 hours' "
                                            "WHERE type = 'escalated'"))
                    connection.execute(text("UPDATE timers SET due_at = now() WHERE kind = 'sla_escalation'"))

            events = cluster.rows("SELECT e.ticket_id, e.type, e.data FROM ticket_events e JOIN tickets t "
                                  "ON t.id = e.ticket_id WHERE t.device_id = 'case-0' AND t.link IS NULL")
            fired: Counter[tuple[Any, ...]] = Counter()
            for e in events:
                data = _data(e.data)
                if e.type == "sla_warning":
                    fired[(e.ticket_id, e.type, data["target"], data["stage"])] += 1
                elif e.type == "escalated":
                    fired[(e.ticket_id, e.type, data["target"], data["level"])] += 1
                elif e.type == "reassigned":
                    fired[(e.ticket_id, e.type)] += 1
            assert max(fired.values()) == 1, [k for k, n in fired.items() if n > 1]
            escalated = {k for k in fired if k[1] == "escalated"}
            assert len(escalated) == ESCALATING * targets * 2  # levels 1 and 2 (level 3 is not due yet)
            assert sum(1 for k in fired if k[1] == "reassigned") == ESCALATING  # nobody accepted in time
            by_worker = [cluster.counter(i, "storeguard_central_timers_fired_total") for i in range(2)]
            assert min(by_worker) > 0, f"one worker fired every timer: {by_worker}"
        finally:
            close_clients(clients)


def _wait(condition: Callable[[], bool], what: str, timeout: float = 30,
          state: Callable[[], Any] | None = None) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}" + (f": {state()}" if state else ""))
        time.sleep(0.3)
