"""One polled device (edge layer): its read plan, latest readings, health and rules.

Health (``edge.offline``): ``after_failures`` (K) consecutive failed polls take the device
offline and raise a ``device_offline`` fault; ``clear_after_successes`` (M) consecutive good
polls bring it back and clear it. While offline every reading is STALE and the rules hold
their state. A device restored as offline after a restart starts offline: it too needs M
good polls.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from datetime import datetime
from operator import itemgetter

from device_profiles.schema import DeviceProfile
from edge.config import DeviceConfig
from edge.decode import stale_reading
from edge.metrics import DeviceMetrics
from edge.model import DeviceSnapshot, FaultChange, PointReading
from edge.offline import OFFLINE_FAULT, OfflineTracker, PolledDevice
from edge.planner import ReadBlock, plan_reads
from edge.rules import DeviceRules

logger = logging.getLogger(__name__)

__all__ = ["OFFLINE_FAULT", "DeviceRuntime"]


class DeviceRuntime(PolledDevice):
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
        self.health = OfflineTracker(config.id, profile.model, config.location, bus, config.unit, "modbus_unit",
                                     f"unit {config.unit}", profile.offline)
        self.last_ok_at: datetime | None = None
        self._readings: dict[str, PointReading] = {}
        self._stale: dict[str, tuple[PointReading, ...]] = {}  # per detail: PointReadings are immutable
        self._in_point_order = _point_order(profile)
        self._point_count = len(profile.points)
        self.metrics = DeviceMetrics(
            device_id=config.id,
            bus=bus,
            unit=config.unit,
            device_model=profile.model,
            reads_per_poll=len(self.plan),
        )

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
        self.health.restore(raised, since)
        self.metrics.online = False
        return True

    def poll_succeeded(self, readings: dict[str, PointReading], now: float, at: datetime) -> list[FaultChange]:
        m = self.metrics
        m.reads_coalesced += max(0, self._point_count - len(self.plan))
        m.in_backoff, m.backoff_s = False, 0.0
        self.next_poll_at = None
        was_offline = self.health.offline
        trusted, back = self.health.poll_succeeded(m, now, at)
        if not trusted:
            return []  # not trusted yet: readings stay unknown, rules hold
        changes = [back] if back is not None else []
        if was_offline:
            self.rules.device_online(now)  # power may have returned: start the power-up windows
        elif self.last_ok_at is None:
            self.rules.device_online(now, first_poll=True)
        self._readings = readings
        self.last_ok_at = at
        m.online = True
        changes.extend(self.rules.evaluate(readings, now, at))
        return changes

    def poll_failed(self, error: Exception, now: float, at: datetime, backoff_s: float) -> list[FaultChange]:
        m = self.metrics
        m.in_backoff, m.backoff_s = backoff_s > 0, backoff_s
        self.next_poll_at = now + backoff_s if backoff_s > 0 else None
        raised = self.health.poll_failed(m, error, now, at, self.last_ok_at)
        return [raised] if raised is not None else []

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


def _point_order(profile: DeviceProfile) -> Callable[[Mapping[str, PointReading]], tuple[PointReading, ...]]:
    """Readings by point name -> a tuple in the profile's point order (a KeyError for a missing point)."""
    names = [p.name for p in profile.points]
    if len(names) == 1:  # itemgetter of one key returns the item, not a tuple
        name = names[0]
        return lambda readings: (readings[name],)
    if not names:
        return lambda readings: ()
    return itemgetter(*names)
