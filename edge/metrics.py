"""Counters of the edge (edge layer), as plain dataclasses the gateway renders as Prometheus text.

The schedulers own mutable counters; ``Edge.metrics()`` hands out copies.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(slots=True)
class RequestCounters:
    """Outcomes of Modbus requests; kept per device and summed per bus."""

    requests: int = 0  # requests sent, retries included
    responses: int = 0  # valid, non-exception responses
    timeouts: int = 0
    crc_errors: int = 0
    bad_frames: int = 0  # truncated, wrong unit, wrong function, bad byte count (CRC errors excluded)
    exceptions: int = 0  # Modbus exception responses
    link_errors: int = 0  # port or connection not usable
    retries: int = 0


@dataclass(slots=True)
class DeviceMetrics:
    device_id: str
    bus: str
    unit: int
    device_model: str
    online: bool = False
    polls: int = 0  # polls attempted (a poll = every planned read of the device)
    failed_polls: int = 0
    skipped_polls: int = 0  # cycles the device sat out in backoff
    consecutive_failures: int = 0
    consecutive_successes: int = 0
    reads_per_poll: int = 0  # planned reads after coalescing
    reads_coalesced: int = 0  # reads saved by coalescing, summed over polls
    in_backoff: bool = False
    backoff_s: float = 0.0  # current backoff period (0 when healthy)
    last_latency_s: float | None = None  # round trip of the last successful request
    last_error: str = ""
    requests: RequestCounters = field(default_factory=RequestCounters)


@dataclass(slots=True)
class BusMetrics:
    bus: str
    transport: str
    endpoint: str
    poll_interval_s: float
    cycles: int = 0
    overruns: int = 0  # cycles that took longer than the poll interval
    last_cycle_s: float | None = None
    last_latency_s: float | None = None
    requests: RequestCounters = field(default_factory=RequestCounters)


@dataclass(frozen=True, slots=True)
class EdgeMetrics:
    buses: tuple[BusMetrics, ...]
    devices: tuple[DeviceMetrics, ...]
