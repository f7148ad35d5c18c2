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
    response_timeout_s: float | None = None  # the (adaptive) timeout of the last request sent
    bus_time_s: float = 0.0  # seconds of bus time its requests took, answered or not (a counter)
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
    learned_timeout_s: float | None = None  # what a device that never answered waits beyond the wire time
    requests: RequestCounters = field(default_factory=RequestCounters)


@dataclass(slots=True)
class BusFaultMetrics:
    """Correlated failures of one bus (see edge.correlation)."""

    bus: str
    silent: bool = False  # every device of the bus is failing
    fault_active: bool = False  # bus_offline raised and not cleared
    held: bool = False  # bus_offline held back under store_power_loss
    devices_held: int = 0  # device_offline faults held back under this bus
    faults_raised: int = 0  # bus_offline raises sent


@dataclass(slots=True)
class StoreFaultMetrics:
    power_loss_active: bool = False  # store_power_loss raised and not cleared
    power_losses: int = 0  # store_power_loss raises sent
    devices_held: int = 0  # device_offline faults held back directly under the store fault


@dataclass(frozen=True, slots=True)
class EdgeMetrics:
    buses: tuple[BusMetrics, ...]
    devices: tuple[DeviceMetrics, ...]
    bus_faults: tuple[BusFaultMetrics, ...] = ()
    store: StoreFaultMetrics | None = None
