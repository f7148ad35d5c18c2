"""Process counters and the Prometheus text format (gateway layer).

In-memory counters reset with the process, as Prometheus counters do; the outbox's drop
counters are persisted in the store database instead (they are read from there).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Literal

MetricType = Literal["counter", "gauge"]


@dataclass
class GatewayMetrics:
    published: Counter[str] = field(default_factory=Counter)  # by outbox kind
    acked: Counter[str] = field(default_factory=Counter)  # by outbox kind
    publish_refused: int = 0  # the MQTT client's queue was full; retried later
    mqtt_connects: int = 0
    mqtt_disconnects: int = 0
    mqtt_connect_failures: int = 0
    fault_events: Counter[str] = field(default_factory=Counter)  # by state
    fault_events_invalid: int = 0
    telemetry_batches: int = 0
    telemetry_points_invalid: int = 0
    health_messages: int = 0
    ticket_status_received: int = 0
    ticket_status_outcomes: Counter[str] = field(default_factory=Counter)  # latest / stale / duplicate
    ticket_status_rejected: Counter[str] = field(default_factory=Counter)  # by reason
    config_rejected: Counter[str] = field(default_factory=Counter)  # malformed desired configs, by reason
    downlink_overflow: int = 0  # left unacknowledged: the broker redelivers after a reconnect
    downlink_errors: int = 0  # storage failed; left unacknowledged


class PromText:
    """Builds Prometheus text exposition format 0.0.4, one HELP/TYPE per family."""

    def __init__(self) -> None:
        self._lines: list[str] = []
        self._declared: set[str] = set()

    def add(self, name: str, kind: MetricType, help_text: str, value: float,
            labels: Mapping[str, str] | None = None) -> None:
        if name not in self._declared:
            self._declared.add(name)
            self._lines.append(f"# HELP {name} {help_text}")
            self._lines.append(f"# TYPE {name} {kind}")
        self._lines.append(f"{name}{_labels(labels)} {_number(value)}")

    def family(self, name: str, kind: MetricType, help_text: str,
               samples: Iterable[tuple[Mapping[str, str], float]]) -> None:
        for labels, value in samples:
            self.add(name, kind, help_text, value, labels)

    def render(self) -> str:
        return "\n".join(self._lines) + "\n"


def _labels(labels: Mapping[str, str] | None) -> str:
    if not labels:
        return ""
    inner = ",".join(f'{key}="{_escape(str(value))}"' for key, value in sorted(labels.items()))
    return "{" + inner + "}"


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _number(value: float) -> str:
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, int):
        return str(value)
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return repr(float(value))
