"""The store gateway against a real, private Mosquitto, with a paho client playing central.

The edge is a fake that calls the gateway's sink; everything else is the real gateway.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

from gateway.config import StoreConfig
from protocols.mqtt.messages import StoreHealth, TelemetryBatch, TicketStatus
from protocols.mqtt.topics import TopicKind, topic
from tests.integration.gateway.helpers import Central, RunningStore, eventually, running_store, save_broker_sessions
from tests.support.services import MosquittoProcess
from tests.unit.gateway.fakes import snapshot, store_config
from tests.unit.gateway.test_tickets import status

pytestmark = pytest.mark.mosquitto

STORE = "store-001"
DOWNLINK = topic(STORE, TopicKind.TICKET_STATUS)


def config_for(tmp_path: Path, broker: MosquittoProcess, **changes: object) -> StoreConfig:
    return store_config(tmp_path, mqtt_url=broker.url, **changes)


async def raise_faults(store: RunningStore, count: int, start: int = 0) -> None:
    for i in range(start, start + count):
        await store.edges.last.fault(f"case-{i:02d}")


def seqs(central: Central) -> set[int]:
    return {event.seq for event in central.faults()}


async def test_faults_telemetry_and_health_arrive_with_contract_payloads(
    tmp_path: Path, mosquitto: MosquittoProcess
) -> None:
    config = config_for(tmp_path, mosquitto, telemetry_interval_s=0.3, health_interval_s=0.3)
    with Central(mosquitto.url) as central:
        async with running_store(config) as store:
            await store.wait_connected()
            edge = store.edges.last
            await edge.poll(snapshot("case-01", air=3.5))
            await edge.poll(snapshot("case-02", online=False))
            await raise_faults(store, 3)
            await eventually(lambda: len(central.faults()) >= 3, what="three fault events")
            received = central.received("fault")
            assert all(r.qos == 1 for r in received)
            events = central.faults()
            assert [e.seq for e in events][:3] == sorted(e.seq for e in events[:3])
            assert {e.device_id for e in events} == {"case-00", "case-01", "case-02"}
            assert all(e.store_id == STORE for e in events)

            batch = await eventually(lambda: [m for m in (r.message() for r in central.received("telemetry"))
                                              if isinstance(m, TelemetryBatch)], what="a telemetry batch")
            points = {(p.device_id, p.point): p for p in batch[0].points}
            assert points[("case-01", "air_temp")].value == 3.5
            assert points[("case-02", "air_temp")].quality == "stale"
            await store.wait_outbox_empty()

            def health_with_devices() -> list[StoreHealth]:
                found = [r.message() for r in central.received("health")]
                return [h for h in found if isinstance(h, StoreHealth) and h.online and len(h.devices) == 2]

            await eventually(health_with_devices, what="health listing both devices")
            # health is retained: a client that subscribes later still gets online=true
            with Central(mosquitto.url, subscribe=topic(STORE, TopicKind.HEALTH), persistent=False) as late:
                [retained] = await eventually(lambda: late.received("health"), what="retained health")
            health = retained.message()
            assert retained.retain and isinstance(health, StoreHealth) and health.online
            assert {d.device_id for d in health.devices} == {"case-01", "case-02"}

            state = await store.state()
            assert state["store"] == {"id": STORE, "name": "Harbour Road"}
            devices = {d["id"]: d for d in state["devices"]}
            assert devices["case-01"]["online"] is True
            assert devices["case-01"]["readings"][0] == {"point": "air_temp", "value": 3.5, "quality": "good",
                                                          "unit": "°C", "detail": ""}
            assert devices["case-02"]["online"] is False
            assert len(state["open_faults"]) == 3

            code, content_type, page = await store.get_text("/")
            assert code == 200 and content_type.startswith("text/html")
            assert "Harbour Road" in page and "/api/state" in page
            code, content_type, metrics = await store.get_text("/metrics")
            assert code == 200 and content_type.startswith("text/plain; version=0.0.4")
            assert "storeguard_gateway_mqtt_connected 1" in metrics
            assert 'storeguard_outbox_acked_total{kind="fault"} 3' in metrics
            assert 'storeguard_outbox_depth{kind="fault"} 0' in metrics
            assert 'storeguard_outbox_dropped_total{kind="fault",reason="overflow"} 0' in metrics
            assert (await store.get_text("/healthz"))[0] == 200


async def test_broker_killed_while_faults_happen_loses_nothing(tmp_path: Path, mosquitto: MosquittoProcess) -> None:
    config = config_for(tmp_path, mosquitto)
    with Central(mosquitto.url) as central:
        async with running_store(config) as store:
            await store.wait_connected()
            await raise_faults(store, 2)
            await eventually(lambda: seqs(central) >= {0, 1}, what="the first faults")
            await save_broker_sessions(mosquitto)  # central's session survives the kill

            mosquitto.kill()
            await store.wait_connected(False)
            await raise_faults(store, 40, start=2)
            state = await store.state()
            assert state["mqtt"]["connected"] is False and state["mqtt"]["last_contact_at"] is not None
            assert state["outbox"]["by_kind"]["fault"] == 40

            mosquitto.start()
            await store.wait_connected(timeout=15)
            await eventually(lambda: seqs(central) >= set(range(42)), timeout=15, what="all 42 fault events")
            await store.wait_outbox_empty()
            _, _, metrics = await store.get_text("/metrics")
            assert "storeguard_gateway_mqtt_disconnects_total 1" in metrics
            assert "storeguard_outbox_faults 0" in metrics
            assert 'storeguard_outbox_dropped_total{kind="fault",reason="overflow"} 0' in metrics


async def test_a_restarted_gateway_resends_what_was_not_acknowledged(
    tmp_path: Path, mosquitto: MosquittoProcess
) -> None:
    config = config_for(tmp_path, mosquitto)
    with Central(mosquitto.url) as central:
        async with running_store(config) as store:
            await store.wait_connected()
            await save_broker_sessions(mosquitto)  # central's session survives the kill
            mosquitto.kill()
            await store.wait_connected(False)
            await raise_faults(store, 10)
        assert central.faults() == []

        mosquitto.start()
        async with running_store(config) as store:  # a new process on the same outbox file
            await store.wait_connected(timeout=15)
            await eventually(lambda: seqs(central) >= set(range(10)), timeout=15, what="the ten faults")
            await store.wait_outbox_empty()
            await raise_faults(store, 1, start=10)
            await eventually(lambda: 10 in seqs(central), what="the next fault")
        [latest] = [e for e in central.faults() if e.device_id == "case-10"]
        assert latest.seq == 10  # the sequence carried on across the restart


async def test_rows_published_but_never_acknowledged_stay_for_the_next_gateway(
    tmp_path: Path, mosquitto: MosquittoProcess
) -> None:
    config = config_for(tmp_path, mosquitto)
    assert mosquitto.proc is not None
    broker_pid = mosquitto.proc.pid

    async def all_in_flight(store: RunningStore) -> bool:
        state = await store.state()
        return bool(state["outbox"]["in_flight"] == 5 and state["outbox"]["by_kind"]["fault"] == 5)

    with Central(mosquitto.url) as central:
        try:
            async with running_store(config) as store:
                await store.wait_connected()
                await store.wait_outbox_empty()  # the online health is through
                os.kill(broker_pid, signal.SIGSTOP)  # the broker takes publishes but never answers
                await raise_faults(store, 5)
                await eventually(lambda: all_in_flight(store), what="five published, unacknowledged faults")
        finally:
            os.kill(broker_pid, signal.SIGCONT)
        async with running_store(config) as store:
            await store.wait_connected()
            await store.wait_outbox_empty()
            _, _, metrics = await store.get_text("/metrics")
            assert 'storeguard_outbox_acked_total{kind="fault"} 5' in metrics  # the new process sent them again
        await eventually(lambda: seqs(central) >= set(range(5)), what="the five faults at central")


async def test_ticket_status_sent_while_the_store_was_away_arrives_on_reconnect(
    tmp_path: Path, mosquitto: MosquittoProcess
) -> None:
    config = config_for(tmp_path, mosquitto)
    with Central(mosquitto.url, subscribe=None) as central:
        async with running_store(config) as store:
            await store.wait_connected()  # subscribed, with a persistent session
        # the gateway is gone; central carries on
        central.publish(DOWNLINK, status(1, "new").to_bytes())
        central.publish(DOWNLINK, status(2, "assigned", assignee="Ana Ruiz").to_bytes())
        central.publish(DOWNLINK, b"{this is not json")
        central.publish(DOWNLINK, status(4, "en_route", assignee="Ana Ruiz").to_bytes())
        central.publish(DOWNLINK, status(3, "accepted", assignee="Ana Ruiz").to_bytes())  # late, older

        async with running_store(config) as store:
            async def four_statuses() -> list[dict[str, object]] | None:
                tickets = await store.get_json("/api/tickets")
                return tickets if tickets and len(tickets[0]["statuses_received"]) == 4 else None

            [ticket] = await eventually(four_statuses, what="four ticket statuses")
            assert ticket["statuses_received"] == ["new", "assigned", "en_route", "accepted"]
            assert (ticket["status"], ticket["version"], ticket["assignee"]) == ("en_route", 4, "Ana Ruiz")
            latest = TicketStatus.model_validate(
                {k: v for k, v in ticket.items() if k not in ("statuses_received", "received")})
            assert [r["version"] for r in ticket["received"]] == [1, 2, 4, 3]
            assert all(r["received_at"] >= r["changed_at"] - 1 for r in ticket["received"])
            assert latest.ticket_id == 7

            # malformed messages while connected are counted, never fatal
            central.publish(DOWNLINK, status(5, "on_site", store_id="store-002").to_bytes())
            central.publish(DOWNLINK, b'{"kind": "ticket_status", "version": "x"}')
            central.publish(DOWNLINK, status(6, "resolved", assignee="Ana Ruiz").to_bytes())

            async def resolved() -> bool:
                return bool((await store.get_json("/api/tickets"))[0]["status"] == "resolved")

            await eventually(resolved, what="the resolved status")
            _, _, metrics = await store.get_text("/metrics")
            assert 'storeguard_gateway_ticket_status_rejected_total{reason="store_mismatch"} 1' in metrics
            assert 'storeguard_gateway_ticket_status_rejected_total{reason="schema"} 1' in metrics
            assert 'storeguard_gateway_ticket_status_rejected_total{reason="bad_json"} 1' in metrics
            assert 'storeguard_gateway_ticket_status_stored_total{outcome="latest"} 4' in metrics
            assert 'storeguard_gateway_ticket_status_stored_total{outcome="stale"} 1' in metrics

            state = await store.state()
            assert state["tickets"][0]["statuses_received"][-1] == "resolved"
            assert state["mqtt"]["connected"] is True


async def test_without_a_broker_the_store_keeps_faults_and_says_central_is_unreachable(tmp_path: Path) -> None:
    config = store_config(tmp_path)  # port 1: nothing listens there
    async with running_store(config) as store:
        await raise_faults(store, 3)
        state = await store.state()
        assert state["mqtt"]["connected"] is False
        assert state["outbox"]["by_kind"]["fault"] == 3
        assert len(state["open_faults"]) == 3
        _, _, metrics = await store.get_text("/metrics")
        assert "storeguard_gateway_mqtt_connected 0" in metrics
