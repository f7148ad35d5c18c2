"""Thresholds pushed from central to a store through a real private Mosquitto, and acknowledged.

Real central (FastAPI app with its MQTT ingest and publisher, SQLite) and real store gateway
(run_store); the edge is a fake that takes new rule overrides the way `Edge.reconfigure`
does (validated with `edge.rules.effective_rules`).
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from central.app import create_app
from central.auth.passwords import hash_password
from central.settings import CentralSettings
from device_profiles import ProfileRegistry
from edge.clock import Clock
from edge.config import EdgeConfig, RuleOverride
from edge.model import EdgeSink, FaultChange
from edge.rules import effective_rules
from tests.integration.gateway.helpers import eventually, running_store
from tests.support.services import MosquittoProcess
from tests.unit.gateway.fakes import FakeEdge, FakeEdges, snapshot, store_config

pytestmark = pytest.mark.mosquitto

STORE = "store-001"
PASSWORD = "correct-horse-battery"
URL = f"/api/v1/stores/{STORE}/config"


class ConfigurableEdge(FakeEdge):
    def __init__(self, config: EdgeConfig, registry: ProfileRegistry, sink: EdgeSink, clock: Clock,
                 restored_faults: Sequence[FaultChange] = ()) -> None:
        super().__init__(config, registry, sink, clock, restored_faults)
        self.reconfigured: list[dict[str, dict[str, RuleOverride]]] = []

    def reconfigure(self, overrides: Mapping[str, Mapping[str, RuleOverride]]) -> list[FaultChange]:
        devices = {d.id: d for bus in self.config.buses for d in bus.devices}
        for device_id, rules in overrides.items():
            device = devices[device_id]
            effective_rules(self.registry.get(device.profile),  # type: ignore[arg-type]
                            device.model_copy(update={"rules": dict(rules)}))
        self.reconfigured.append({d: dict(r) for d, r in overrides.items()})
        return []


class ConfigurableEdges(FakeEdges):
    def __call__(self, config: EdgeConfig, registry: ProfileRegistry, sink: EdgeSink, clock: Clock,
                 restored_faults: Sequence[FaultChange] = ()) -> ConfigurableEdge:
        edge = ConfigurableEdge(config, registry, sink, clock, restored_faults)
        self.built.append(edge)
        return edge


@contextlib.contextmanager
def central(broker: MosquittoProcess, tmp_path: Path) -> Iterator[TestClient]:
    seed = tmp_path / "seed.yaml"
    seed.write_text(f"users:\n  - username: fran\n    display_name: Fran Facilities\n    role: facilities\n"
                    f"    password_hash: \"{hash_password(PASSWORD)}\"\n")
    settings = CentralSettings(database_url=f"sqlite:///{tmp_path / 'central.db'}", mqtt_url=broker.url,
                               mqtt_client_id=f"central-{uuid.uuid4().hex[:8]}", seed_file=seed,
                               mqtt_reconnect_min_s=0.2, mqtt_reconnect_max_s=1.0, publisher_poll_s=0.2)
    with TestClient(create_app(settings)) as client:
        yield client


def login(client: TestClient) -> dict[str, str]:
    response = client.post("/api/v1/auth/token", json={"username": "fran", "password": PASSWORD})
    return {"Authorization": f"Bearer {response.json()['access_token']}"}


def central_state(client: TestClient, headers: dict[str, str]) -> Any:
    return client.get(URL, headers=headers).json()


async def test_central_pushes_a_config_the_store_applies_and_acknowledges(
    tmp_path: Path, mosquitto: MosquittoProcess
) -> None:
    config = store_config(tmp_path / "store", mqtt_url=mosquitto.url, health_interval_s=0.3)
    edges = ConfigurableEdges()
    with central(mosquitto, tmp_path) as client:
        runtime = client.app.state.runtime  # type: ignore[attr-defined]
        await eventually(lambda: runtime.consumer.connected and runtime.publisher.connected, what="central on MQTT")
        fran = login(client)
        async with running_store(config, edges) as store:
            await store.wait_connected()
            await store.edges.last.poll(snapshot("case-01"))
            await store.edges.last.poll(snapshot("case-02"))

            def devices_known() -> bool:
                response = client.get(f"/api/v1/stores/{STORE}", headers=fran)
                return response.status_code == 200 and {d["model"] for d in response.json()["devices"]} == {
                    "dixell-xr75cx"} and len(response.json()["devices"]) == 2

            await eventually(devices_known, what="central to learn the store's devices from its health")
            body = {"devices": {"case-01": {"high_temperature": {"limit": 5.0, "clear": 3.0}}}}
            put = client.put(URL, headers=fran, json=body)
            assert put.status_code == 201, put.text

            await eventually(lambda: central_state(client, fran)["in_sync"], what="the store to apply v1")
            state = central_state(client, fran)
            assert state["applied_version"] == 1 and state["last_ack"]["result"] == "applied"
            edge = store.edges.last
            assert isinstance(edge, ConfigurableEdge)
            assert edge.reconfigured == [{"case-01": {"high_temperature": RuleOverride(limit=5.0, clear=3.0)}}]
            page = (await store.state())["config"]
            assert page["active_version"] == 1 and page["issued_by"] == "fran" and page["last_result"] == "applied"

            # an invalid set is refused by central (422) and never reaches the store
            bad = {"devices": {"case-01": {"high_temperature": {"clear": 9.0}}}}
            assert client.put(URL, headers=fran, json=bad).status_code == 422

        # the store is offline while facilities change its config
        put = client.put(URL, headers=fran, json={"devices": {"case-02": {"door_open": {"delay_s": 30}}}})
        assert put.status_code == 201 and put.json()["desired"]["version"] == 2
        assert central_state(client, fran)["in_sync"] is False

        # a new MQTT session (e.g. a replaced gateway box): nothing queued for it, only the retained config
        fresh = config.model_copy(update={"mqtt": config.mqtt.model_copy(update={"client_id": "sg-gw-new-box"})})
        async with running_store(fresh, edges) as store:
            restarted = store.edges.last
            assert isinstance(restarted, ConfigurableEdge)
            # v1 from the store database applied before the edge ran
            assert restarted.config.buses[0].devices[0].rules["high_temperature"].limit == 5.0
            await eventually(lambda: central_state(client, fran)["applied_version"] == 2,
                             what="the store to get v2 (retained) on reconnect")
            assert central_state(client, fran)["in_sync"] is True
            assert restarted.reconfigured[-1] == {
                "case-01": {}, "case-02": {"door_open": RuleOverride(delay_s=30)}}
            assert (await store.state())["config"]["active_version"] == 2
