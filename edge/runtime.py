"""The edge runtime (edge layer): every bus of a store polled, decoded and judged, concurrently.

``Edge`` validates the config against the profiles at construction (``EdgeConfigError``),
opens one transport per bus as an async context manager, and ``run()`` runs one
``BusScheduler`` per bus in a TaskGroup until cancelled, the buses' first cycles staggered
(bus k of N starts k/N of the shortest poll interval late; ``SchedulerSettings.stagger_buses``).
After each device poll it hands the fault changes, then the device snapshot, to the sink.

Rule state survives a restart: ``restored_faults`` (the faults still open downstream, as
``active_faults()`` listed them) put the matching rules, and device_offline, straight back
into ACTIVE without a report, so a fault that recovered while the store was down is
cleared by the first readings that say so. A restored fault that no longer matches the
config (device removed, rule disabled or renamed) is reported cleared when ``run()`` starts.
``restored_rule_state`` (what ``rule_state()`` returned before) resumes the rest: pending
delays, not_seen / creep / rate memory and suppression windows.

Every poll's fault changes pass through ``edge.correlation.Correlator`` on their way to the
sink: a bus gone silent as a whole is one ``bus_offline``, a store without power one
``store_power_loss``, and the device_offline faults under them are held back. Those two
resume after a restart like the rest.
"""

from __future__ import annotations

import asyncio
import copy
import logging
import random
from collections.abc import Iterable, Mapping
from contextlib import AsyncExitStack
from dataclasses import dataclass, replace
from datetime import datetime
from enum import StrEnum
from types import TracebackType

from device_profiles.loader import ProfileRegistry
from device_profiles.schema import DeviceProfile
from edge.clock import Clock, SystemClock
from edge.config import PERIPHERAL_TRANSPORTS, BusConfig, EdgeConfig, RuleOverride
from edge.correlation import Correlator
from edge.device import OFFLINE_FAULT, DeviceRuntime
from edge.errors import EdgeConfigError
from edge.metrics import BusMetrics, EdgeMetrics
from edge.model import DeviceSnapshot, EdgeSink, FaultChange
from edge.peripherals import PeripheralDevice, PeripheralTransportFactory, build_peripheral_bus, default_byte_transport
from edge.rules import DeviceRules, Evidence, effective_rules
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


def _baudrate(bus: _Bus) -> int | None:
    """The serial line's baud rate; None where the edge does not drive the line itself."""
    return serial_settings(bus.config, bus.profiles).baudrate if bus.config.transport == "rtu" else None


class Gone(StrEnum):
    """Why a restored fault matches nothing in the config any more."""

    DEVICE_REMOVED = "device_removed"
    RULE_REMOVED = "rule_removed"  # disabled, renamed, or not in the device's profile
    NO_LONGER_APPLIES = "no_longer_applies"  # a bus/store fault whose bus (or UPS) is not configured


@dataclass(frozen=True, slots=True)
class _GoneFault:
    raised: FaultChange
    reason: Gone

    def cleared(self, at: datetime) -> FaultChange:
        raised = self.raised
        if self.reason is Gone.DEVICE_REMOVED:
            detail = f"device {raised.device_id!r} is no longer configured"
        elif self.reason is Gone.NO_LONGER_APPLIES:
            detail = f"{raised.fault_code} of {raised.device_id!r} no longer matches the configured buses"
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
        restored_rule_state: Mapping[str, Mapping[str, object]] | None = None,
        peripheral_transport_factory: PeripheralTransportFactory | None = None,
    ) -> None:
        self._config = config
        self._sink = sink
        self._clock: Clock = clock or SystemClock()
        self._factory = transport_factory or default_transport_factory
        self._settings = scheduler_settings or SchedulerSettings()
        self._rng = rng or random.Random()
        modbus_buses = [b for b in config.buses if b.transport not in PERIPHERAL_TRANSPORTS]
        self._buses = [self._build_bus(bus, registry) for bus in modbus_buses]
        # escpos / cctalk ports (edge.peripherals): polled by their own loop, same sink and health rules
        self._peripherals = [
            build_peripheral_bus(b, registry) for b in config.buses if b.transport in PERIPHERAL_TRANSPORTS
        ]
        self._byte_factory = peripheral_transport_factory or default_byte_transport
        self._correlator = Correlator([(bus.metrics, bus.devices) for bus in self._buses])  # bus/store faults
        self._gone = self._restore(restored_faults)  # reported cleared when run() starts
        self._import_rule_state(restored_rule_state or {})  # after the faults: pending timers, baselines
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
                    baudrate=_baudrate(bus),  # the adaptive timeouts' wire-time floor
                )
                schedulers.append(scheduler)
            for peripheral in self._peripherals:
                byte_transport = self._byte_factory(peripheral.config, peripheral.serial)
                await byte_transport.open()
                stack.push_async_callback(byte_transport.close)
                peripheral.transport = byte_transport
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
            for scheduler, phase_s in zip(self._schedulers, self._start_phases(), strict=True):
                group.create_task(scheduler.run(start_after_s=phase_s), name=f"edge-bus-{scheduler.name}")
            for peripheral in self._peripherals:
                group.create_task(peripheral.run(self._clock, self._polled), name=f"edge-bus-{peripheral.name}")

    def _start_phases(self) -> list[float]:
        """When each Modbus bus starts its first cycle: bus k of N (in config order) k/N of the
        poll interval after the first. The buses share one event loop; started together, their
        cycles run interleaved and all end together, each as long as all of them. Spread out,
        each cycle runs mostly alone (shorter, so its readings are fresher when a telemetry batch
        follows it), and the CPU and network load is spread over the interval.

        With buses of different intervals the shortest one is the unit: a slow bus (a UPS read
        every 2 minutes) would otherwise wait most of its long interval for its first reading,
        and buses of different intervals drift against each other anyway."""
        count = len(self._schedulers)
        if not self._settings.stagger_buses or count < 2:
            return [0.0] * count
        unit = min(s.metrics.poll_interval_s for s in self._schedulers)
        return [k / count * unit for k in range(count)]

    # --- state for the gateway ---------------------------------------------------------------

    def snapshots(self) -> list[DeviceSnapshot]:
        return [device.snapshot() for device in self._all_devices()]

    def active_faults(self) -> list[FaultChange]:
        """The raise of every fault active now, device_offline included."""
        device_faults = [fault for device in self._all_devices() for fault in device.active_faults()]
        return self._correlator.active_faults(device_faults)  # held device_offline out, bus/store faults in

    def rule_state(self) -> dict[str, dict[str, object]]:
        """Per device id, its rules' state for a restart (``DeviceRules.export_state``): JSON-able,
        times as wall-clock stamps. Hand it back as ``restored_rule_state``."""
        now, at = self._clock.monotonic(), self._clock.now()
        return {device.id: device.rules.export_state(now, at) for bus in self._buses for device in bus.devices}

    def _import_rule_state(self, saved: Mapping[str, Mapping[str, object]]) -> None:
        devices = {device.id: device for bus in self._buses for device in bus.devices}
        now, at = self._clock.monotonic(), self._clock.now()
        for device_id, state in saved.items():
            device = devices.get(device_id)
            if device is None:
                logger.warning("saved rule state of device %r ignored: the device is no longer configured", device_id)
            else:
                device.rules.import_state(state, now, at)

    def _all_devices(self) -> list[DeviceRuntime | PeripheralDevice]:
        modbus: list[DeviceRuntime | PeripheralDevice] = [d for bus in self._buses for d in bus.devices]
        return modbus + [d for bus in self._peripherals for d in bus.devices]

    def metrics(self) -> EdgeMetrics:
        """A copy of every counter, per bus and per device."""
        return EdgeMetrics(
            buses=tuple(
                copy.deepcopy(m) for m in [*(b.metrics for b in self._buses), *(p.metrics for p in self._peripherals)]
            ),
            devices=tuple(copy.deepcopy(d.metrics) for d in self._all_devices()),
            bus_faults=self._correlator.bus_metrics(),
            store=self._correlator.store_fault_metrics(),
        )

    def reconfigure(self, overrides: Mapping[str, Mapping[str, RuleOverride]]) -> list[FaultChange]:
        """Replace the rule overrides of the devices named (a desired config from central), atomically.

        Every named device's effective rules are built first: an unknown device or an invalid
        override raises EdgeConfigError and nothing changes. Then each device's rules are
        swapped in (``DeviceRules.reconfigure``: a kept rule keeps its state under the new
        limits). Returns the "cleared" changes of active faults whose rule was removed or
        disabled; the caller hands them to the sink. Modbus devices only: a serial peripheral's
        conditions are not reconfigured at run time.
        """
        devices = {device.id: device for bus in self._buses for device in bus.devices}
        planned = []
        for device_id, rules in overrides.items():
            device = devices.get(device_id)
            if device is None:
                raise EdgeConfigError(f"device {device_id!r}: not a Modbus device of this store; nothing changed")
            config = device.config.model_copy(update={"rules": dict(rules)})
            planned.append((device, config, effective_rules(device.profile, config)))
        now, at = self._clock.monotonic(), self._clock.now()
        changes: list[FaultChange] = []
        for device, config, new_rules in planned:
            changes.extend(device.rules.reconfigure(new_rules, now, at))
            device.config = config
        return changes

    async def _clear_gone(self) -> None:
        while self._gone:
            await self._sink.fault_changed(self._gone[0].cleared(self._clock.now()))
            self._gone.pop(0)  # only once the sink has it

    async def _polled(self, device: DeviceRuntime | PeripheralDevice, changes: list[FaultChange]) -> None:
        if isinstance(device, DeviceRuntime):  # a silent bus or store: one fault (edge.correlation)
            changes = self._correlator.polled(device, changes, self._clock.monotonic(), self._clock.now())
        for change in changes:
            await self._sink.fault_changed(change)
        await self._sink.device_polled(device.snapshot())

    # --- construction --------------------------------------------------------------------------

    def _restore(self, faults: Iterable[FaultChange]) -> list[_GoneFault]:
        """Put every restored open fault back into its state machine; return those that match
        nothing in the config any more."""
        devices = {device.id: device for device in self._all_devices()}
        now, at = self._clock.monotonic(), self._clock.now()
        restored, gone = 0, []
        for fault in faults:
            if fault.state is FaultState.CLEARED:
                continue  # not open: nothing to resume
            device = devices.get(fault.device_id)
            since = now - max(0.0, (at - fault.occurred_at).total_seconds())  # durations span the restart
            correlated = self._correlator.restore(fault, since)  # bus_offline / store_power_loss
            if correlated is not None:
                if correlated:
                    restored += 1
                else:
                    gone.append(_GoneFault(fault, Gone.NO_LONGER_APPLIES))
            elif device is None:
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
            if not isinstance(profile, DeviceProfile) or profile.protocol != "modbus":
                raise EdgeConfigError(
                    f"{where}: profile {profile.model} speaks {profile.protocol}, not modbus "
                    f"(put it on an escpos or cctalk bus)"
                )
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
