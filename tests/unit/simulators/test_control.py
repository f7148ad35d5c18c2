"""The HTTP control API, served in-process by aiohttp's test server."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from device_profiles import ProfileRegistry
from simulators.control import create_control_app
from simulators.simulation import Simulation
from tests.unit.simulators.helpers import config

Client = TestClient[web.Request, web.Application]


@pytest.fixture
async def client(registry: ProfileRegistry) -> AsyncIterator[Client]:
    simulation = Simulation.from_config(config(), registry)
    async with TestClient(TestServer(create_control_app(simulation))) as client:
        yield client


async def test_devices_lists_values_and_faults(client: Client) -> None:
    response = await client.get("/devices")
    assert response.status == 200
    devices = await response.json()
    assert [d["id"] for d in devices] == ["case-01", "case-02", "lane-01"]
    assert devices[0]["points"]["setpoint"] == 4.0 and devices[0]["faults"] == []
    assert devices[2]["points"]["printer_status"] == 0x12


async def test_inject_and_clear_a_fault(client: Client) -> None:
    response = await client.post("/devices/case-02/faults", json={"fault": "door_open", "duration_s": 60})
    assert response.status == 201
    body = await response.json()
    assert body["points"]["u00_state"] == "door_open"
    assert body["faults"][0]["fault"] == "door_open" and 59 < body["faults"][0]["remaining_s"] <= 60
    response = await client.delete("/devices/case-02/faults/door_open")
    assert response.status == 200 and (await response.json())["faults"] == []
    response = await client.delete("/devices/case-02/faults/door_open")
    assert response.status == 404


async def test_exception_fault_takes_a_code(client: Client) -> None:
    response = await client.post("/devices/case-01/faults", json={"fault": "exception", "code": 6})
    assert response.status == 201
    assert (await response.json())["faults"][0]["code"] == 6


@pytest.mark.parametrize(
    ("path", "body", "status", "message"),
    [
        ("/devices/case-99/faults", {"fault": "door_open"}, 404, "case-99"),
        ("/devices/case-01/faults", {"fault": "paper_end"}, 422, "does not apply"),
        ("/devices/case-01/faults", {"fault": "meltdown"}, 422, "unknown fault"),
        ("/devices/case-01/faults", {"fault": "door_open", "duration_s": -1}, 422, "duration_s"),
        ("/devices/case-01/faults", {"nope": 1}, 422, "fault"),
    ],
)
async def test_bad_requests_get_clear_errors(
    client: Client, path: str, body: object, status: int, message: str
) -> None:
    response = await client.post(path, json=body)
    assert response.status == status
    assert message in (await response.json())["error"]


async def test_non_json_body_and_unknown_device(client: Client) -> None:
    response = await client.post("/devices/case-01/faults", data=b"not json")
    assert response.status == 400
    assert (await client.get("/devices/case-99")).status == 404
    assert (await client.get("/devices/lane-01")).status == 200
    assert (await client.get("/healthz")).status == 200
