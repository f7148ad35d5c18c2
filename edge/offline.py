"""Whether a device answers (edge layer): K failed polls -> offline, M good polls -> back.

Shared by Modbus devices (``edge.device``) and serial peripherals (``edge.peripherals.device``):
``after_failures`` (K) consecutive failed polls raise a ``device_offline`` fault,
``clear_after_successes`` (M) consecutive good polls clear it. A fault restored after a
restart starts the device offline, so it too needs M good polls. The caller keeps the
counters (``DeviceMetrics``); this keeps the state and builds the fault changes.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime

from device_profiles.schema import OfflineSettings
from edge.config import DeviceConfig
from edge.logs import FailureLog
from edge.metrics import DeviceMetrics
from edge.model import FaultChange
from protocols.mqtt.messages import FaultState, TicketClass

logger = logging.getLogger(__name__)

OFFLINE_FAULT = "device_offline"
Evidence = dict[str, float | int | bool | str | None]


@dataclass(slots=True)
class OfflineTracker:
    device_id: str
    device_model: str
    location: str
    bus: str
    unit: int
    unit_key: str  # the evidence key of the address: "modbus_unit", or "unit" for a peripheral
    where: str  # how the description names the address: "unit 3", "cctalk 40"
    settings: OfflineSettings
    protocol: str | None = None  # a peripheral's, named in the evidence
    offline: bool = False
    fault: FaultChange | None = None
    since: float | None = None  # monotonic, when it went offline
    log: FailureLog = field(init=False, repr=False)  # first failure at ERROR, repeats counted, recovery INFO

    def __post_init__(self) -> None:
        self.log = FailureLog(logger, f"{self.bus}/{self.device_id} ({self.where})")

    def poll_succeeded(self, metrics: DeviceMetrics, now: float, at: datetime) -> tuple[bool, FaultChange | None]:
        """Count a good poll: (whether its readings count, the device_offline clear if it came back).
        An offline device's readings count again once it answered M polls in a row."""
        metrics.polls += 1
        metrics.consecutive_failures = 0
        metrics.consecutive_successes += 1
        change = None
        if self.offline:
            if not self.trusted_again(metrics):
                return False, None
            change = self.come_back(metrics, now, at)
        self.log.ok("answering again")
        return True, change

    def poll_failed(self, metrics: DeviceMetrics, error: Exception, now: float, at: datetime,
                    last_ok_at: datetime | None) -> FaultChange | None:
        """Count a failed poll; the device_offline raise when it is the K-th in a row."""
        metrics.polls += 1
        metrics.failed_polls += 1
        metrics.consecutive_successes = 0
        metrics.consecutive_failures += 1
        metrics.last_error = f"{type(error).__name__}: {error}"
        self.log.failed(f"poll failed ({metrics.last_error}); {metrics.consecutive_failures} in a row")
        if not self.should_go_offline(metrics):
            return None
        metrics.online = False
        return self.go_offline(metrics, error, now, at, last_ok_at)

    def restore(self, raised: FaultChange, since: float) -> None:
        """Resume a device_offline still open from before a restart, emitting nothing."""
        self.offline, self.fault, self.since = True, raised, since

    def should_go_offline(self, metrics: DeviceMetrics) -> bool:
        return not self.offline and metrics.consecutive_failures >= self.settings.after_failures

    def trusted_again(self, metrics: DeviceMetrics) -> bool:
        """An offline device's good polls count once there are M in a row."""
        return metrics.consecutive_successes >= self.settings.clear_after_successes

    def go_offline(self, metrics: DeviceMetrics, error: Exception, now: float, at: datetime,
                   last_ok_at: datetime | None) -> FaultChange:
        self.offline, self.since = True, now
        evidence: Evidence = {
            "failures": metrics.consecutive_failures,
            "last_error": metrics.last_error,
            "error_type": type(error).__name__,
            "bus": self.bus,
            self.unit_key: self.unit,
            "last_ok_at": last_ok_at.isoformat() if last_ok_at else None,
        }
        if self.protocol is not None:
            evidence["protocol"] = self.protocol
        self.fault = self._change(FaultState.RAISED, at, evidence)
        logger.error("%s/%s (%s) is offline after %d failed polls", self.bus, self.device_id, self.where,
                     metrics.consecutive_failures)
        return self.fault

    def come_back(self, metrics: DeviceMetrics, now: float, at: datetime) -> FaultChange:
        offline_s = now - self.since if self.since is not None else None
        self.offline, self.fault, self.since = False, None, None
        evidence: Evidence = {
            "successes": metrics.consecutive_successes,
            "offline_s": round(offline_s, 3) if offline_s is not None else None,
            "bus": self.bus,
            self.unit_key: self.unit,
        }
        logger.info("%s/%s (%s) is back online", self.bus, self.device_id, self.where)
        return self._change(FaultState.CLEARED, at, evidence)

    def _change(self, state: FaultState, at: datetime, evidence: Evidence) -> FaultChange:
        return FaultChange(
            device_id=self.device_id,
            device_model=self.device_model,
            fault_code=OFFLINE_FAULT,
            state=state,
            severity=self.settings.severity,
            fault_class=self.settings.fault_class,
            ticket_class=TicketClass.REPAIR,
            occurred_at=at,
            description=f"Device not answering on bus {self.bus} ({self.where})",
            location=self.location,
            evidence=evidence,
        )


class PolledDevice:
    """What every polled device (Modbus or serial peripheral) shows the scheduler, the
    correlation and the gateway: its id, address and whether it answers."""

    config: DeviceConfig
    health: OfflineTracker

    @property
    def id(self) -> str:
        return self.config.id

    @property
    def unit(self) -> int:
        return self.config.unit

    @property
    def offline(self) -> bool:
        return self.health.offline

    @property
    def offline_fault(self) -> FaultChange | None:
        return self.health.fault
