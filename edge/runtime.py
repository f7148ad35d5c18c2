"""The edge runtime (edge layer): every bus of a store polled, decoded and judged, concurrently.

``Edge`` validates the config against the profiles at construction (``EdgeConfigError``),
opens one transport per bus as an async context manager, and ``run()`` runs one
``BusScheduler`` per bus in a TaskGroup until cancelled. After each device poll it hands
the fault changes, then the device snapshot, to the sink.

Rule state survives a restart: ``restored_faults`` (the faults still open downstream, as
``active_faults()`` listed them) put the matching rules, and device_offline, straight back
into ACTIVE without a report, so a fault that recovered while the store was down is
cleared by the first readings that say so. A restored fault that no longer matches the
config (device removed, rule disabled or renamed) is reported cleared when ``run()`` starts.
"""

from __future__ import annotations

import asyncio
import copy
import logging
import random
from collections.abc import Iterable
from contextlib import AsyncExitStack
from dataclasses import dataclass, replace
from datetime import datetime
from enum import StrEnum
from types import TracebackType

from device_profiles.loader import ProfileRegistry
from device_profiles.schema import DeviceProfile
from edge.clock import Clock, SystemClock
from edge.config import BusConfig, EdgeConfig
from edge.device import OFFLINE_FAULT, DeviceRuntime
from edge.errors import EdgeConfigError
from edge.metrics import BusMetrics, EdgeMetrics
from edge.model import DeviceSnapshot, EdgeSink, FaultChange
from edge.rules import DeviceRules, Evidence
from edge.scheduler import BusScheduler, SchedulerSettings
from edge.transport.factory import TransportFactory, default_transport_factory, serial_settings
from protocols.mqtt.messages import FaultState

logger = logging.getLogger(__name__)

RETRIES = {"rtu": 1, "rtu_over_tcp": 1, "tcp": 0}  # TCP delivers or fails; a serial line has noise


class _Bus:
    def __init__(self, config: BusConfig, devices: list[DeviceRuntime], profiles: dict[int, DeviceProfile]) -> None:
        self.config = config
        self.devices = devices
        self.profiles = profiles
        endpoint = config.port if config.transport == "rtu" else f"{config.host}:{config.tcp_port}"
        self.metrics = BusMetrics(
            bus=config.name,
            transport=config.transport,
            endpoint=endpoint or "",
            poll_interval_s=config.poll_interval_s,
        )


class Gone(StrEnum):
    """Why a restored fault matches nothing in the config any more."""

    DEVICE_REMOVED = "device_removed"
    RULE_REMOVED = "rule_removed"  # disabled, renamed, or not in the device's profile


@dataclass(frozen=True, slots=True)
class _GoneFault:
    raised: FaultChange
    reason: Gone

    def cleared(self, at: datetime) -> FaultChange:
        raised = self.raised
        if self.reason is Gone.DEVICE_REMOVED:
            detail = f"device {raised.device_id!r} is no longer configured"
        else:
            detail = f"device {raised.device_id!r} has no enabled rule {raised.fault_code!r} any more"
        evidence: Evidence = {
            "reason": self.reason.value,
            "detail": detail,
            "raised_at": raised.occurred_at.isoformat(),
        }
        return replace(raised, state=FaultState.CLEARED, occurred_at=at, evidence=evidence)


class Edge:
    def __init__(
        self,
        config: EdgeConfig,
        registry: ProfileRegistry,
        sink: EdgeSink,
        clock: Clock | None = None,
        transport_factory: TransportFactory | None = None,
        *,
        scheduler_settings: SchedulerSettings | None = None,
        rng: random.Random | None = None,
        restored_faults: Iterable[FaultChange] = (),
    ) -> None:
        self._config = config
        self._sink = sink
        self._clock: Clock = clock or SystemClock()
        self._factory = transport_factory or default_transport_factory
        self._settings = scheduler_settings or SchedulerSettings()
        self._rng = rng or random.Random()
        self._buses = [self._build_bus(bus, registry) for bus in config.buses]
        self._gone = self._restore(restored_faults)  # reported cleared when run() starts
        self._schedulers: list[BusScheduler] = []
        self._stack: AsyncExitStack | None = None

    # --- lifecycle ---------------------------------------------------------------------------

    async def __aenter__(self) -> Edge:
        if self._stack is not None:
            raise RuntimeError("Edge is already open")
        async with AsyncExitStack() as stack:
            schedulers = []
            for bus in self._buses:
                transport = self._factory(bus.config, bus.profiles)
                await transport.open()
                stack.push_async_callback(transport.close)
                scheduler = BusScheduler(
                    bus.metrics,
                    bus.devices,
                    transport,
                    self._clock,
                    self._polled,
                    retries=RETRIES[bus.config.transport],
                    settings=self._settings,
                    rng=self._rng,
                )
                schedulers.append(scheduler)
            self._schedulers = schedulers
            self._stack = stack.pop_all()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        stack, self._stack = self._stack, None
        self._schedulers = []
        if stack is not None:
            await stack.aclose()

    async def run(self) -> None:
        """Run every bus scheduler concurrently until cancelled.

        First it reports cleared every restored fault that matches nothing in the config any
        more. Device failures never end it; an exception raised by the sink does (it ends the
        TaskGroup and surfaces here), because an edge that cannot hand over a fault event
        must not carry on as if it had.
        """
        if self._stack is None:
            raise RuntimeError("use 'async with Edge(...)' before run()")
        async with asyncio.TaskGroup() as group:
            if self._gone:
                group.create_task(self._clear_gone(), name="edge-clear-gone")  # starts first
            for scheduler in self._schedulers:
                group.create_task(scheduler.run(), name=f"edge-bus-{scheduler.name}")

    # --- state for the gateway ---------------------------------------------------------------

    def snapshots(self) -> list[DeviceSnapshot]:
        return [device.snapshot() for bus in self._buses for device in bus.devices]

    def active_faults(self) -> list[FaultChange]:
        """The raise of every fault active now, device_offline included."""
        return [fault for bus in self._buses for device in bus.devices for fault in device.active_faults()]

    def metrics(self) -> EdgeMetrics:
        """A copy of every counter, per bus and per device."""
        return EdgeMetrics(
            buses=tuple(copy.deepcopy(bus.metrics) for bus in self._buses),
            devices=tuple(copy.deepcopy(d.metrics) for bus in self._buses for d in bus.devices),
        )

    async def _clear_gone(self) -> None:
        while self._gone:
            await self._sink.fault_changed(self._gone[0].cleared(self._clock.now()))
            self._gone.pop(0)  # only once the sink has it

    async def _polled(self, device: DeviceRuntime, changes: list[FaultChange]) -> None:
        for change in changes:
            await self._sink.fault_changed(change)
        await self._sink.device_polled(device.snapshot())

    # --- construction --------------------------------------------------------------------------

    def _restore(self, faults: Iterable[FaultChange]) -> list[_GoneFault]:
        """Put every restored open fault back into its state machine; return those that match
        nothing in the config any more."""
        devices = {device.id: device for bus in self._buses for device in bus.devices}
        now, at = self._clock.monotonic(), self._clock.now()
        restored, gone = 0, []
        for fault in faults:
            if fault.state is FaultState.CLEARED:
                continue  # not open: nothing to resume
            device = devices.get(fault.device_id)
            since = now - max(0.0, (at - fault.occurred_at).total_seconds())  # durations span the restart
            if device is None:
                gone.append(_GoneFault(fault, Gone.DEVICE_REMOVED))
            elif device.restore(fault, since):
                restored += 1
            else:
                gone.append(_GoneFault(fault, Gone.RULE_REMOVED))
        if restored:
            logger.info("resumed %d fault(s) still open from before the restart", restored)
        if gone:
            logger.warning(
                "%d fault(s) still open from before the restart no longer match the config; clearing them: %s",
                len(gone),
                ", ".join(f"{g.raised.device_id}/{g.raised.fault_code} ({g.reason.value})" for g in gone),
            )
        return gone

    def _build_bus(self, bus: BusConfig, registry: ProfileRegistry) -> _Bus:
        devices: list[DeviceRuntime] = []
        profiles: dict[int, DeviceProfile] = {}
        for config in bus.devices:
            where = f"device {config.id!r} on bus {bus.name!r}"
            if config.profile not in registry:
                known = ", ".join(registry.models()) or "none"
                raise EdgeConfigError(f"{where}: unknown device profile {config.profile!r} (known: {known})")
            profile = registry.get(config.profile)
            if profile.protocol != "modbus":
                raise EdgeConfigError(f"{where}: profile {profile.model} speaks {profile.protocol}, not modbus")
            if bus.transport != "tcp" and config.unit == 0:
                raise EdgeConfigError(f"{where}: unit 0 is the RTU broadcast address; devices never answer it")
            if any(rule.code == OFFLINE_FAULT for rule in profile.rules):
                raise EdgeConfigError(f"{where}: profile {profile.model} may not define a rule named {OFFLINE_FAULT!r}")
            rules = DeviceRules(config, profile)  # raises EdgeConfigError for a bad override
            timeout_ms = bus.timeout_ms or profile.modbus.timeout_ms
            devices.append(DeviceRuntime(bus.name, config, profile, rules, timeout_s=timeout_ms / 1000))
            profiles[config.unit] = profile
        if bus.transport == "rtu":
            serial_settings(bus, profiles)  # raises EdgeConfigError when the profiles disagree
        return _Bus(bus, devices, profiles)
