"""A peripheral port and its devices (edge layer): built from the config, polled in cycles.

``build_peripheral_bus`` checks the config against the profiles (``EdgeConfigError``): the
profiles must be peripheral profiles of the bus's protocol and agree on serial settings
unless the bus sets ``serial``. ``PeripheralBus.run`` polls every device once per poll
interval, one request in flight; each poll ends in ``poll_succeeded`` or ``poll_failed`` of
its device and the resulting fault changes go to ``on_poll``. No retries and no backoff: a
printer or validator port is one or two devices, and a dead one costs one timeout a cycle.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from device_profiles.loader import ProfileRegistry
from device_profiles.peripheral import PeripheralProfile, PeripheralSerial
from edge.clock import Clock
from edge.config import BusConfig
from edge.device import OFFLINE_FAULT
from edge.errors import EdgeConfigError, TransportError
from edge.metrics import BusMetrics
from edge.model import FaultChange
from edge.peripherals.cctalk import CcTalkPoller
from edge.peripherals.device import PeripheralDevice, Poller
from edge.peripherals.escpos import EscPosPoller
from edge.peripherals.serial import SerialByteTransport
from edge.peripherals.transport import ByteTransport

# Builds the byte transport of one peripheral bus, given the (agreed) profile serial settings.
PeripheralTransportFactory = Callable[[BusConfig, PeripheralSerial], ByteTransport]
OnPeripheralPoll = Callable[[PeripheralDevice, list[FaultChange]], Awaitable[None]]


def default_byte_transport(bus: BusConfig, serial: PeripheralSerial) -> ByteTransport:
    assert bus.port is not None  # BusConfig validates it
    settings = bus.serial if bus.serial is not None else serial
    return SerialByteTransport(bus.port, settings, rtscts=serial.rtscts)


class PeripheralBus:
    def __init__(self, config: BusConfig, devices: list[PeripheralDevice], serial: PeripheralSerial) -> None:
        self.config = config
        self.devices = devices
        self.serial = serial
        self.metrics = BusMetrics(
            bus=config.name,
            transport=config.transport,
            endpoint=config.port or "",
            poll_interval_s=config.poll_interval_s,
        )
        self.transport: ByteTransport | None = None

    @property
    def name(self) -> str:
        return self.config.name

    async def run(self, clock: Clock, on_poll: OnPeripheralPoll) -> None:
        """Poll cycle after cycle until cancelled (``transport`` must be set and open)."""
        interval = self.config.poll_interval_s
        while True:
            started = clock.monotonic()
            await self.run_cycle(clock, on_poll)
            elapsed = clock.monotonic() - started
            self.metrics.last_cycle_s = elapsed
            if elapsed >= interval:
                self.metrics.overruns += 1
            await clock.sleep(interval - elapsed)

    async def run_cycle(self, clock: Clock, on_poll: OnPeripheralPoll) -> None:
        assert self.transport is not None, "open the bus's transport first"
        self.metrics.cycles += 1
        for device in self.devices:
            started = clock.monotonic()
            try:
                result = await device.poll(self.transport, (self.metrics.requests,))
            except TransportError as exc:
                changes = device.poll_failed(exc, clock.monotonic(), clock.now())
            else:
                latency = clock.monotonic() - started
                device.metrics.last_latency_s = self.metrics.last_latency_s = latency
                changes = device.poll_succeeded(result, clock.monotonic(), clock.now())
            await on_poll(device, changes)


def build_peripheral_bus(bus: BusConfig, registry: ProfileRegistry) -> PeripheralBus:
    """The devices of an escpos or cctalk bus. Raises EdgeConfigError naming device and reason."""
    devices: list[PeripheralDevice] = []
    serials: set[PeripheralSerial] = set()
    for config in bus.devices:
        where = f"device {config.id!r} on bus {bus.name!r}"
        if config.profile not in registry:
            known = ", ".join(registry.models()) or "none"
            raise EdgeConfigError(f"{where}: unknown device profile {config.profile!r} (known: {known})")
        profile = registry.get(config.profile)
        if not isinstance(profile, PeripheralProfile) or profile.protocol != bus.transport:
            raise EdgeConfigError(
                f"{where}: profile {profile.model} speaks {profile.protocol}, not {bus.transport} "
                f"(a {bus.transport} bus takes {bus.transport} peripheral profiles)"
            )
        if any(c.code == OFFLINE_FAULT for c in profile.conditions):
            raise EdgeConfigError(f"{where}: profile {profile.model} may not define {OFFLINE_FAULT!r}")
        timeout_ms = bus.timeout_ms or profile.timeout_ms
        devices.append(PeripheralDevice(bus.name, config, profile, _poller(bus, config.unit, profile),
                                        timeout_s=timeout_ms / 1000))  # fmt: skip
        serials.add(profile.serial)
    if len(serials) != 1 and bus.serial is None:
        raise EdgeConfigError(f"bus {bus.name!r}: its devices' profiles disagree on serial settings; set 'serial'")
    return PeripheralBus(bus, devices, next(iter(serials)))


def _poller(bus: BusConfig, unit: int, profile: PeripheralProfile) -> Poller:
    if profile.protocol == "escpos":
        return EscPosPoller()
    return CcTalkPoller(unit, echo=bus.echo)
