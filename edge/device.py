"""One polled device (edge layer): its read plan, latest readings, health and rules.

Health: ``after_failures`` (K) consecutive failed polls take the device offline and raise
a ``device_offline`` fault; ``clear_after_successes`` (M) consecutive good polls bring it
back and clear it. While offline every reading is STALE and the rules hold their state.
A device restored as offline after a restart starts offline: it too needs M good polls.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from datetime import datetime
from operator import itemgetter

from device_profiles.schema import DeviceProfile
from edge.config import DeviceConfig
from edge.decode import stale_reading
from edge.logs import FailureLog
from edge.metrics import DeviceMetrics
from edge.model import DeviceSnapshot, FaultChange, PointReading
from edge.planner import ReadBlock, plan_reads
from edge.rules import DeviceRules
from protocols.mqtt.messages import FaultState, TicketClass

logger = logging.getLogger(__name__)

OFFLINE_FAULT = "device_offline"


class DeviceRuntime:
    def __init__(
        self, bus: str, config: DeviceConfig, profile: DeviceProfile, rules: DeviceRules, *, timeout_s: float
    ) -> None:
        self.bus = bus
        self.config = config
        self.profile = profile
        self.rules = rules
        self.timeout_s = timeout_s
        self.plan: tuple[ReadBlock, ...] = plan_reads(profile.points, profile.modbus)
        self.next_poll_at: float | None = None  # monotonic; None = poll in the next cycle
        self.offline = False
        self.offline_fault: FaultChange | None = None
        self.last_ok_at: datetime | None = None
        self._offline_since: float | None = None
        self._readings: dict[str, PointReading] = {}
        self._stale: dict[str, tuple[PointReading, ...]] = {}  # per detail: PointReadings are immutable
        self._in_point_order = _point_order(profile)
        self._point_count = len(profile.points)
        self._log = FailureLog(logger, f"{bus}/{config.id} (unit {config.unit})")
        self.metrics = DeviceMetrics(
            device_id=config.id,
            bus=bus,
            unit=config.unit,
            device_model=profile.model,
            reads_per_poll=len(self.plan),
        )

    @property
    def id(self) -> str:
        return self.config.id

    @property
    def unit(self) -> int:
        return self.config.unit

    def due(self, now: float) -> bool:
        return self.next_poll_at is None or now >= self.next_poll_at

    def readings(self) -> dict[str, PointReading]:
        """The latest readings; STALE while offline or before the first good poll."""
        if self.offline or self.last_ok_at is None:
            return {r.point: r for r in self._stale_readings()}
        return dict(self._readings)

    def snapshot(self) -> DeviceSnapshot:
        """Built once per poll (the polling hot path): the readings in profile order come from
        one precomputed ``itemgetter``, and the STALE readings, which never change, are made once."""
        online = not self.offline and self.last_ok_at is not None
        return DeviceSnapshot(
            self.config.id,
            self.profile.model,
            self.config.location,
            online,
            self._in_point_order(self._readings) if online else self._stale_readings(),
            self.last_ok_at,
            self.last_ok_at,
        )

    def _stale_readings(self) -> tuple[PointReading, ...]:
        detail = "offline" if self.offline else "not read yet"
        stale = self._stale.get(detail)
        if stale is None:
            stale = self._stale[detail] = tuple(stale_reading(p, detail) for p in self.profile.points)
        return stale

    def active_faults(self) -> list[FaultChange]:
        faults = self.rules.active_faults()
        if self.offline_fault is not None:
            faults.append(self.offline_fault)
        return faults

    def restore(self, raised: FaultChange, since: float) -> bool:
        """Resume a fault still open from before a restart (``since``: when it was raised, on this
        run's monotonic clock), emitting nothing. A restored device_offline takes the device
        offline, so M good polls are needed to clear it. False when no enabled rule has the code."""
        if raised.fault_code != OFFLINE_FAULT:
            return self.rules.restore(raised, since)
        self.offline = True
        self.offline_fault = raised
        self._offline_since = since
        self.metrics.online = False
        return True

    def poll_succeeded(self, readings: dict[str, PointReading], now: float, at: datetime) -> list[FaultChange]:
        m = self.metrics
        m.polls += 1
        m.reads_coalesced += max(0, self._point_count - len(self.plan))
        m.consecutive_failures = 0
        m.consecutive_successes += 1
        m.in_backoff, m.backoff_s = False, 0.0
        self.next_poll_at = None
        changes: list[FaultChange] = []
        if self.offline:
            if m.consecutive_successes < self.profile.offline.clear_after_successes:
                return changes  # not trusted yet: readings stay unknown, rules hold
            changes.append(self._back_online(now, at))
            self.rules.device_online(now)  # power may have returned: start the power-up windows
        elif self.last_ok_at is None:
            self.rules.device_online(now, first_poll=True)
        self._log.ok("answering again")
        self._readings = readings
        self.last_ok_at = at
        m.online = True
        changes.extend(self.rules.evaluate(readings, now, at))
        return changes

    def poll_failed(self, error: Exception, now: float, at: datetime, backoff_s: float) -> list[FaultChange]:
        m = self.metrics
        m.polls += 1
        m.failed_polls += 1
        m.consecutive_successes = 0
        m.consecutive_failures += 1
        m.last_error = f"{type(error).__name__}: {error}"
        m.in_backoff, m.backoff_s = backoff_s > 0, backoff_s
        self.next_poll_at = now + backoff_s if backoff_s > 0 else None
        self._log.failed(f"poll failed ({m.last_error}); {m.consecutive_failures} in a row")
        if self.offline or m.consecutive_failures < self.profile.offline.after_failures:
            return []
        m.online = False
        return [self._go_offline(error, now, at)]

    def split_block(self, block: ReadBlock) -> bool:
        """Replace a read that bridges unused addresses by reads without gaps; False if it has none."""
        parts = self.split_parts(block)
        if len(parts) < 2 or block not in self.plan:
            return False
        index = self.plan.index(block)
        self.plan = (*self.plan[:index], *parts, *self.plan[index + 1 :])
        self.metrics.reads_per_poll = len(self.plan)
        logger.warning(
            "%s/%s: unit %d refused the %s read %d..%d (illegal data address); reading it in %d parts from now on",
            self.bus,
            self.id,
            self.unit,
            block.table.value,
            block.address,
            block.end,
            len(parts),
        )
        return True

    def split_parts(self, block: ReadBlock) -> tuple[ReadBlock, ...]:
        return plan_reads(block.points, self.profile.modbus.model_copy(update={"max_gap": 0}))

    def skipped(self) -> None:
        self.metrics.skipped_polls += 1

    def _go_offline(self, error: Exception, now: float, at: datetime) -> FaultChange:
        self.offline = True
        self._offline_since = now
        evidence: dict[str, float | int | bool | str | None] = {
            "failures": self.metrics.consecutive_failures,
            "last_error": self.metrics.last_error,
            "error_type": type(error).__name__,
            "bus": self.bus,
            "modbus_unit": self.unit,
            "last_ok_at": self.last_ok_at.isoformat() if self.last_ok_at else None,
        }
        self.offline_fault = self._offline_change(FaultState.RAISED, at, evidence)
        logger.error(
            "%s/%s (unit %d) is offline after %d failed polls",
            self.bus,
            self.id,
            self.unit,
            self.metrics.consecutive_failures,
        )
        return self.offline_fault

    def _back_online(self, now: float, at: datetime) -> FaultChange:
        offline_s = now - self._offline_since if self._offline_since is not None else None
        self.offline = False
        self.offline_fault = None
        self._offline_since = None
        evidence: dict[str, float | int | bool | str | None] = {
            "successes": self.metrics.consecutive_successes,
            "offline_s": round(offline_s, 3) if offline_s is not None else None,
            "bus": self.bus,
            "modbus_unit": self.unit,
        }
        logger.info("%s/%s (unit %d) is back online", self.bus, self.id, self.unit)
        return self._offline_change(FaultState.CLEARED, at, evidence)

    def _offline_change(
        self, state: FaultState, at: datetime, evidence: dict[str, float | int | bool | str | None]
    ) -> FaultChange:
        return FaultChange(
            device_id=self.id,
            device_model=self.profile.model,
            fault_code=OFFLINE_FAULT,
            state=state,
            severity=self.profile.offline.severity,
            fault_class=self.profile.offline.fault_class,
            ticket_class=TicketClass.REPAIR,
            occurred_at=at,
            description=f"Device not answering on bus {self.bus} (unit {self.unit})",
            location=self.config.location,
            evidence=evidence,
        )


def _point_order(profile: DeviceProfile) -> Callable[[Mapping[str, PointReading]], tuple[PointReading, ...]]:
    """Readings by point name -> a tuple in the profile's point order (a KeyError for a missing point)."""
    names = [p.name for p in profile.points]
    if len(names) == 1:  # itemgetter of one key returns the item, not a tuple
        name = names[0]
        return lambda readings: (readings[name],)
    if not names:
        return lambda readings: ()
    return itemgetter(*names)
