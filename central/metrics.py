"""Process metrics in Prometheus text format (infrastructure layer).

Counters are thread-safe (the MQTT threads and the HTTP threads both count); gauges are
read when scraped. One `Metrics` per process, created by `create_app`, never a global.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from types import MappingProxyType

COUNTERS: Mapping[str, str] = MappingProxyType(
    {
        "storeguard_central_messages_accepted_total": "MQTT messages applied, by kind",
        "storeguard_central_messages_duplicate_total": "MQTT messages already applied (same message_id), by kind",
        "storeguard_central_messages_rejected_total": "MQTT messages that broke the contract, by reason",
        "storeguard_central_messages_failed_total":
            "MQTT message processing attempts that raised a non-transient error",
        "storeguard_central_messages_dead_lettered_total":
            "MQTT messages given up on: stored in dead_letters and acknowledged",
        "storeguard_central_fault_events_out_of_order_total":
            "fault events older than the newest known event of their fault: recorded, not applied",
        "storeguard_central_ingest_overflow_total": "MQTT messages not queued because the ingest queue was full",
        "storeguard_central_db_retries_total": "ingest transactions retried after a transient database error",
        "storeguard_central_tickets_created_total": "tickets created from device faults, by ticket class",
        "storeguard_central_status_published_total": "ticket status messages acknowledged by the broker",
        "storeguard_central_timers_fired_total": "timers fired (handler ran and committed), by kind",
        "storeguard_central_timers_retried_total": "timer handler runs that failed and were rescheduled",
        "storeguard_central_timers_parked_total": "timers parked after failing max_attempts times",
    }
)


def _labels(labels: tuple[tuple[str, str], ...]) -> str:
    if not labels:
        return ""
    body = ",".join(f'{k}="{v.replace(chr(92), chr(92) * 2).replace(chr(34), chr(92) + chr(34))}"' for k, v in labels)
    return "{" + body + "}"


class Metrics:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counters: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
        self._gauges: dict[str, tuple[str, Callable[[], float]]] = {}

    def inc(self, name: str, amount: float = 1, **labels: str) -> None:
        if name not in COUNTERS:
            raise KeyError(f"undeclared counter {name!r}")
        key = (name, tuple(sorted(labels.items())))
        with self._lock:
            self._counters[key] = self._counters.get(key, 0) + amount

    def value(self, name: str, **labels: str) -> float:
        with self._lock:
            return self._counters.get((name, tuple(sorted(labels.items()))), 0)

    def gauge(self, name: str, help_text: str, read: Callable[[], float]) -> None:
        self._gauges[name] = (help_text, read)

    def render(self) -> str:
        with self._lock:
            counters = dict(self._counters)
        lines: list[str] = []
        for name, help_text in COUNTERS.items():
            lines += [f"# HELP {name} {help_text}", f"# TYPE {name} counter"]
            series = [(labels, value) for (n, labels), value in sorted(counters.items()) if n == name]
            for labels, value in series or [((), 0.0)]:
                lines.append(f"{name}{_labels(labels)} {value:g}")
        for name, (help_text, read) in sorted(self._gauges.items()):
            try:
                value = float(read())
            except Exception:  # noqa: BLE001 - a failing gauge must not break the scrape
                value = float("nan")
            lines += [f"# HELP {name} {help_text}", f"# TYPE {name} gauge", f"{name} {value:g}"]
        return "\n".join(lines) + "\n"
