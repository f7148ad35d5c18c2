"""The store page's HTTP surface and the Prometheus text it serves."""

from __future__ import annotations

from collections import Counter
from typing import Any

import aiohttp
from pydantic import BaseModel

from edge.metrics import BusMetrics, DeviceMetrics, EdgeMetrics
from gateway.exposition import MetricsSnapshot, render_metrics
from gateway.metrics import GatewayMetrics, PromText
from gateway.mqtt import LinkStatus
from gateway.outbox import DropReason, OutboxKind, OutboxStats
from gateway.web import StorePage, create_app


class FakeState(BaseModel):
    store: dict[str, str]


class FakeSource:
    def state(self) -> BaseModel:
        return FakeState(store={"id": "store-001", "name": "Harbour Road"})

    def tickets(self) -> list[dict[str, Any]]:
        return [{"ticket_id": 1, "status": "accepted", "statuses_received": ["assigned", "accepted"]}]

    def metrics_text(self) -> str:
        return "storeguard_gateway_mqtt_connected 1\n"


async def test_endpoints_serve_html_json_and_prometheus_text() -> None:
    app = create_app(FakeSource(), store_id="store-001", store_name="Harbour <Road> & Co")
    async with StorePage(app, host="127.0.0.1", port=0) as page, aiohttp.ClientSession() as http:
        assert page.port > 0 and page.url == f"http://127.0.0.1:{page.port}"
        async with http.get(page.url + "/") as r:
            body = await r.text()
            assert r.status == 200 and r.content_type == "text/html"
            assert "Harbour &lt;Road&gt; &amp; Co" in body and "<Road>" not in body
            assert "fetch(\"/api/state\"" in body
        async with http.get(page.url + "/api/state") as r:
            assert await r.json() == {"store": {"id": "store-001", "name": "Harbour Road"}}
        async with http.get(page.url + "/api/tickets") as r:
            assert (await r.json())[0]["statuses_received"] == ["assigned", "accepted"]
        async with http.get(page.url + "/metrics") as r:
            assert r.headers["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8"
            assert await r.text() == "storeguard_gateway_mqtt_connected 1\n"
        async with http.get(page.url + "/healthz") as r:
            assert r.status == 200 and await r.text() == "ok\n"
        async with http.get(page.url + "/nope") as r:
            assert r.status == 404


def test_prom_text_declares_each_family_once_and_escapes_labels() -> None:
    p = PromText()
    p.add("x_total", "counter", "Some things.", 1, {"reason": 'a"b\\c\nd'})
    p.add("x_total", "counter", "Some things.", 2.5, {"reason": "e"})
    assert p.render() == (
        "# HELP x_total Some things.\n# TYPE x_total counter\n"
        'x_total{reason="a\\"b\\\\c\\nd"} 1\nx_total{reason="e"} 2.5\n'
    )


def test_metrics_cover_outbox_link_downlink_and_the_edge() -> None:
    metrics = GatewayMetrics()
    metrics.published["fault"] = 5
    metrics.acked["fault"] = 4
    metrics.ticket_status_rejected["bad_json"] = 2
    device = DeviceMetrics(device_id="case-01", bus="cases", unit=1, device_model="dixell-xr75cx", online=True,
                           polls=10, failed_polls=1)
    device.requests.timeouts = 3
    edge = EdgeMetrics(buses=(BusMetrics(bus="cases", transport="tcp", endpoint="h:502", poll_interval_s=5.0,
                                         cycles=10),), devices=(device,))
    text = render_metrics(MetricsSnapshot(
        metrics=metrics,
        link=LinkStatus(connected=False, broker="h:1883", since=None, last_contact_at=None),
        outbox=OutboxStats(rows={OutboxKind.FAULT: 1, OutboxKind.HEALTH: 0, OutboxKind.TELEMETRY: 7}, bytes=1234,
                           oldest_created_at=0.0),
        outbox_max_bytes=100_000, oldest_age_s=12.5, drops={(OutboxKind.TELEMETRY, DropReason.OVERFLOW): 9},
        over_budget=0, in_flight=1, next_seq=42, open_faults=1, tickets=3,
        devices=Counter(online=1, unknown=1), edge=edge,
    ))
    lines = set(text.splitlines())
    for expected in [
        'storeguard_outbox_depth{kind="telemetry"} 7',
        "storeguard_outbox_faults 1",
        "storeguard_outbox_bytes 1234",
        "storeguard_outbox_oldest_age_seconds 12.5",
        'storeguard_outbox_dropped_total{kind="telemetry",reason="overflow"} 9',
        'storeguard_outbox_dropped_total{kind="fault",reason="overflow"} 0',
        "storeguard_gateway_mqtt_connected 0",
        'storeguard_outbox_published_total{kind="fault"} 5',
        'storeguard_outbox_acked_total{kind="fault"} 4',
        'storeguard_gateway_ticket_status_rejected_total{reason="bad_json"} 2',
        "storeguard_gateway_sequence_next 42",
        'storeguard_gateway_devices{state="online"} 1',
        'storeguard_edge_bus_cycles_total{bus="cases",transport="tcp"} 10',
        'storeguard_edge_device_online{bus="cases",device="case-01",model="dixell-xr75cx"} 1',
        'storeguard_edge_device_failed_polls_total{bus="cases",device="case-01",model="dixell-xr75cx"} 1',
        'storeguard_edge_device_requests_timeouts_total{bus="cases",device="case-01",model="dixell-xr75cx"} 3',
        "# TYPE storeguard_edge_device_online gauge",
    ]:
        assert expected in lines, expected
    assert text.count("# TYPE storeguard_outbox_dropped_total counter") == 1
