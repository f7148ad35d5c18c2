"""GET /metrics (gateway layer): the gateway's and the edge's counters in Prometheus text.

Edge counters are rendered from `edge.metrics.EdgeMetrics` field by field, so a counter the
edge adds later shows up without a change here: numbers become `storeguard_edge_bus_<field>`
/ `storeguard_edge_device_<field>` (counters get `_total`), nested request counters become
`..._requests_<field>_total`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from edge.metrics import EdgeMetrics
from gateway.metrics import GatewayMetrics, PromText
from gateway.mqtt import LinkStatus
from gateway.outbox import DropReason, OutboxKind, OutboxStats

G = "storeguard_gateway_"
O = "storeguard_outbox_"  # the end-to-end tests read storeguard_outbox_depth and storeguard_outbox_faults
EDGE_GAUGES = {
    "online", "consecutive_failures", "consecutive_successes", "reads_per_poll", "in_backoff", "backoff_s",
    "last_latency_s", "last_cycle_s", "poll_interval_s", "unit", "devices_held",
}
EDGE_FLOAT_COUNTERS = {"bus_time_s"}  # seconds that only grow


@dataclass(frozen=True, slots=True)
class MetricsSnapshot:
    """Everything /metrics shows, gathered by the caller at one moment."""

    metrics: GatewayMetrics
    link: LinkStatus
    outbox: OutboxStats
    outbox_max_bytes: int
    oldest_age_s: float
    drops: Mapping[tuple[OutboxKind, DropReason], int]
    over_budget: int
    in_flight: int
    next_seq: int
    open_faults: int
    tickets: int
    devices: Mapping[str, int]  # online / offline / unknown
    edge: EdgeMetrics | None


def render_metrics(s: MetricsSnapshot) -> str:
    p = PromText()
    _outbox(p, s)
    _link(p, s)
    _events(p, s.metrics)
    _downlink(p, s.metrics)
    p.add(G + "open_faults", "gauge", "Faults raised and not yet cleared.", s.open_faults)
    p.add(G + "tickets", "gauge", "Tickets this store has received a status for.", s.tickets)
    p.family(G + "devices", "gauge", "Devices by state.", (({"state": k}, v) for k, v in sorted(s.devices.items())))
    if s.edge is not None:
        _edge(p, s.edge)
    return p.render()


def _outbox(p: PromText, s: MetricsSnapshot) -> None:
    m = s.metrics
    p.family(O + "depth", "gauge", "Messages waiting in the outbox, by kind.",
             (({"kind": k.value}, s.outbox.rows.get(k, 0)) for k in OutboxKind))
    p.add(O + "faults", "gauge", "Fault events waiting in the outbox.", s.outbox.rows.get(OutboxKind.FAULT, 0))
    p.add(O + "bytes", "gauge", "Bytes held by the outbox.", s.outbox.bytes)
    p.add(O + "max_bytes", "gauge", "Configured outbox byte budget.", s.outbox_max_bytes)
    p.add(O + "oldest_age_seconds", "gauge", "Age of the oldest message in the outbox.", s.oldest_age_s)
    p.add(O + "in_flight", "gauge", "Outbox messages published and awaiting PUBACK.", s.in_flight)
    p.family(O + "dropped_total", "counter", "Messages dropped by the outbox (persisted across restarts).",
             (({"kind": k.value, "reason": r.value}, s.drops.get((k, r), 0)) for k in OutboxKind for r in DropReason))
    p.add(O + "fault_over_budget_total", "counter",
          "Fault events kept although the outbox was over its byte budget.", s.over_budget)
    p.family(O + "published_total", "counter", "Outbox messages handed to MQTT, resends included.",
             (({"kind": k.value}, m.published[k.value]) for k in OutboxKind))
    p.family(O + "acked_total", "counter", "Outbox messages acknowledged by the broker and deleted.",
             (({"kind": k.value}, m.acked[k.value]) for k in OutboxKind))
    p.add(O + "publish_refused_total", "counter", "Publishes held back because the MQTT client queue was full.",
          m.publish_refused)
    p.add(G + "sequence_next", "gauge", "The next sequence number of the store (persisted).", s.next_seq)


def _link(p: PromText, s: MetricsSnapshot) -> None:
    m = s.metrics
    p.add(G + "mqtt_connected", "gauge", "1 while the MQTT session to the broker is up.", int(s.link.connected))
    p.add(G + "mqtt_connects_total", "counter", "Successful MQTT connects.", m.mqtt_connects)
    p.add(G + "mqtt_disconnects_total", "counter", "MQTT sessions lost.", m.mqtt_disconnects)
    p.add(G + "mqtt_connect_failures_total", "counter", "Failed MQTT connect attempts.", m.mqtt_connect_failures)


def _events(p: PromText, m: GatewayMetrics) -> None:
    p.family(G + "fault_events_total", "counter", "Fault events written to the outbox, by state.",
             (({"state": k}, v) for k, v in sorted(m.fault_events.items())))
    p.add(G + "fault_events_invalid_total", "counter", "Fault changes the contract refused.", m.fault_events_invalid)
    p.add(G + "telemetry_batches_total", "counter", "Telemetry batches written to the outbox.", m.telemetry_batches)
    p.add(G + "telemetry_points_invalid_total", "counter", "Readings the contract refused.",
          m.telemetry_points_invalid)
    p.add(G + "health_messages_total", "counter", "Store health messages written to the outbox.", m.health_messages)


def _downlink(p: PromText, m: GatewayMetrics) -> None:
    p.add(G + "ticket_status_received_total", "counter", "Ticket status messages received.", m.ticket_status_received)
    p.family(G + "ticket_status_rejected_total", "counter", "Ticket status messages rejected, by reason.",
             (({"reason": k}, v) for k, v in sorted(m.ticket_status_rejected.items())))
    p.family(G + "ticket_status_stored_total", "counter", "Ticket status messages stored, by outcome.",
             (({"outcome": k}, v) for k, v in sorted(m.ticket_status_outcomes.items())))
    p.family(G + "config_rejected_total", "counter", "Desired config messages rejected as malformed, by reason.",
             (({"reason": k}, v) for k, v in sorted(m.config_rejected.items())))
    p.add(G + "downlink_overflow_total", "counter", "Received messages left for redelivery: queue full.",
          m.downlink_overflow)
    p.add(G + "downlink_errors_total", "counter", "Received messages left for redelivery: storage failed.",
          m.downlink_errors)


def _edge(p: PromText, edge: EdgeMetrics) -> None:
    for bus in edge.buses:
        _fields(p, "storeguard_edge_bus_", bus, {"bus": bus.bus, "transport": bus.transport})
    for device in edge.devices:
        _fields(p, "storeguard_edge_device_", device,
                {"device": device.device_id, "bus": device.bus, "model": device.device_model})
    # correlated failures: storeguard_edge_bus_fault_{silent,fault_active,held,devices_held,faults_raised_total}
    for bus_fault in edge.bus_faults:
        _fields(p, "storeguard_edge_bus_fault_", bus_fault, {"bus": bus_fault.bus})
    if edge.store is not None:  # storeguard_edge_store_{power_loss_active,power_losses_total,devices_held}
        _fields(p, "storeguard_edge_store_", edge.store, {})


def _fields(p: PromText, prefix: str, obj: Any, labels: dict[str, str]) -> None:
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            _fields(p, f"{prefix}{f.name}_", value, labels)
        elif isinstance(value, bool | int | float) and f.name not in labels and f.name != "unit":
            gauge = f.name in EDGE_GAUGES or (isinstance(value, bool | float) and f.name not in EDGE_FLOAT_COUNTERS)
            name = prefix + f.name + ("" if gauge else "_total")
            p.add(name, "gauge" if gauge else "counter", f"edge {f.name.replace('_', ' ')}", value, labels)
