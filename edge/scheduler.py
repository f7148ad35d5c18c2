"""The bus scheduler (edge layer): polls every device of one bus, one request in flight.

A cycle polls, in order, every device that is not in backoff; the next cycle starts one
poll interval after this one started, or at once when this one overran (no backlog, no
catch-up burst). The first cycle may be delayed by a start phase (``run(start_after_s=)``):
the Edge staggers its buses so that they take turns on the store's one event loop.

A device that fails is retried at most once (RTU, and only while it was healthy), then
backs off exponentially with jitter: a dead device costs one short probe per backoff
period and never holds up the others for more than one timeout. The backoff
unit is the poll interval, or the last cycle's duration when cycles overrun the interval.

A poll is all of a device's planned reads; the first failed read (timeout, bad frame,
Modbus exception, link down) ends it as a failed poll, and the device keeps its last
readings until it is declared offline. One exception to that: a coalesced read that
bridges unused registers and gets "illegal data address" is split, for good, into reads
without gaps (some devices refuse reads that touch unmapped registers).

How long a request waits is learned per device and per bus (``edge.timeouts``): about as
long as the device, or before its first answer its bus, usually takes, never more than the
profile's timeout, and the full timeout before a device is declared offline.
"""

from __future__ import annotations

import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from edge.clock import Clock
from edge.decode import decode_block
from edge.device import DeviceRuntime
from edge.errors import BadCrc, BadFrame, DeviceException, DeviceTimeout, LinkDown, TransportError
from edge.metrics import BusMetrics, RequestCounters
from edge.model import FaultChange, PointReading
from edge.planner import ReadBlock
from edge.timeouts import ResponseTimer, TimeoutSettings, full_timeout_due
from edge.transport.base import Transport
from edge.transport.serial import SerialRtuTransport
from protocols.modbus.errors import ModbusError
from protocols.modbus.pdu import parse_read_response


@dataclass(frozen=True, slots=True)
class SchedulerSettings:
    backoff_max_s: float = 60.0  # longest wait between probes of a dead device
    jitter: float = 0.2  # backoff periods are shortened by up to this fraction, at random
    timeouts: TimeoutSettings = TimeoutSettings()  # adaptive response timeouts
    # Back off in units of the real cycle when cycles overrun the poll interval (a full bus):
    # "skip 1, 2, 4... cycles", not waits shorter than one cycle that skip nothing.
    backoff_per_cycle: bool = True
    # Start the buses of an edge out of step: bus k of N begins its first cycle k/N of the
    # shortest poll interval after bus 0 (``BusScheduler.run(start_after_s=...)``, set by ``Edge.run``).
    stagger_buses: bool = True


# Told about every poll with the fault changes it caused; the Edge forwards them to its sink.
OnPoll = Callable[[DeviceRuntime, list[FaultChange]], Awaitable[None]]


def backoff_delay(failures: int, interval: float, settings: SchedulerSettings, rng: random.Random) -> float:
    """Wait before the next probe after ``failures`` consecutive failed polls (0: next cycle)."""
    if failures <= 1:
        return 0.0
    base = min(max(settings.backoff_max_s, interval), interval * 2.0 ** (failures - 1))
    return base * (1 - settings.jitter * rng.random())


class BusScheduler:
    def __init__(
        self,
        bus: BusMetrics,
        devices: list[DeviceRuntime],
        transport: Transport,
        clock: Clock,
        on_poll: OnPoll,
        *,
        retries: int,
        settings: SchedulerSettings | None = None,
        rng: random.Random | None = None,
        baudrate: int | None = None,
    ) -> None:
        self.metrics = bus
        self.devices = devices
        self._transport = transport
        self._clock = clock
        self._on_poll = on_poll
        self._retries = retries
        self._settings = settings or SchedulerSettings()
        self._rng = rng or random.Random()
        self.timer = ResponseTimer(  # baudrate: None unless a serial line
            baudrate, self._settings.timeouts, transport_adds_wire=isinstance(transport, SerialRtuTransport)
        )

    @property
    def name(self) -> str:
        return self.metrics.bus

    async def run(self, *, start_after_s: float = 0.0) -> None:
        """Poll cycle after cycle until cancelled, the first one ``start_after_s`` from now (the
        bus's start phase, so that the buses of one store do not all poll at the same moment)."""
        interval = self.metrics.poll_interval_s
        if start_after_s > 0:
            await self._clock.sleep(start_after_s)
        while True:
            started = self._clock.monotonic()
            await self.run_cycle()
            elapsed = self._clock.monotonic() - started
            self.metrics.last_cycle_s = elapsed
            if elapsed >= interval:
                self.metrics.overruns += 1
            await self._clock.sleep(interval - elapsed)  # <= 0 still yields to the loop

    async def run_cycle(self) -> None:
        self.metrics.cycles += 1
        for device in self.devices:
            if not device.due(self._clock.monotonic()):
                device.skipped()
                continue
            await self.poll(device)
        self.metrics.learned_timeout_s = self.timer.bus_timeout()

    async def poll(self, device: DeviceRuntime) -> None:
        readings: dict[str, PointReading] = {}
        try:
            for block in device.plan:
                for reading in await self._read_block(device, block):
                    readings[reading.point] = reading
        except TransportError as exc:
            period = self.metrics.poll_interval_s
            if self._settings.backoff_per_cycle and self.metrics.last_cycle_s is not None:
                period = max(period, self.metrics.last_cycle_s)
            backoff = backoff_delay(device.metrics.consecutive_failures + 1, period, self._settings, self._rng)
            changes = device.poll_failed(exc, self._clock.monotonic(), self._clock.now(), backoff)
        else:
            changes = device.poll_succeeded(readings, self._clock.monotonic(), self._clock.now())
        await self._on_poll(device, changes)

    async def _read_block(self, device: DeviceRuntime, block: ReadBlock) -> list[PointReading]:
        try:
            return decode_block(block, await self._read(device, block))
        except DeviceException as exc:
            if exc.code != ILLEGAL_DATA_ADDRESS or not device.split_block(block):
                raise
        readings = []
        for part in device.split_parts(block):
            readings.extend(decode_block(part, await self._read(device, part)))
        return readings

    async def _read(self, device: DeviceRuntime, block: ReadBlock) -> list[int]:
        # The polling hot path: counters bumped in place, attribute lookups hoisted out of the loop.
        metrics = device.metrics
        attempts = 1 + (self._retries if metrics.consecutive_failures == 0 else 0)
        request = block.request_pdu()
        timer, monotonic, device_id = self.timer, self._clock.monotonic, device.id
        full = full_timeout_due(
            offline=device.offline,
            consecutive_failures=metrics.consecutive_failures,
            after_failures=device.profile.offline.after_failures,
            full_every=timer.settings.full_every,
        )
        device_counts, bus_counts = metrics.requests, self.metrics.requests
        for attempt in range(attempts):
            timeout = timer.timeout(device_id, request, device.timeout_s, full=full, offline=device.offline)
            metrics.response_timeout_s = timeout
            device_counts.requests += 1
            bus_counts.requests += 1
            if attempt:
                device_counts.retries += 1
                bus_counts.retries += 1
            started = monotonic()
            try:
                response = await self._transport.request(device.unit, request, timeout)
                try:
                    values = parse_read_response(block.table, block.count, response)
                except ModbusError as exc:
                    raise BadFrame(f"unit {device.unit}: {exc}") from exc
            except (DeviceTimeout, BadFrame) as exc:
                metrics.bus_time_s += monotonic() - started
                _count((device_counts, bus_counts), _counter_name(exc))
                if isinstance(exc, DeviceTimeout):
                    timer.timed_out(device_id)
                if attempt + 1 < attempts:
                    continue
                raise
            except (DeviceException, LinkDown) as exc:
                metrics.bus_time_s += monotonic() - started
                _count((device_counts, bus_counts), _counter_name(exc))
                raise
            latency = monotonic() - started
            device_counts.responses += 1
            bus_counts.responses += 1
            metrics.last_latency_s = self.metrics.last_latency_s = latency
            metrics.bus_time_s += latency
            timer.answered(device_id, request, latency)
            return values
        raise AssertionError("unreachable: the last attempt returns or raises")


ILLEGAL_DATA_ADDRESS = 0x02

_COUNTERS: tuple[tuple[type[TransportError], str], ...] = (
    (DeviceTimeout, "timeouts"),
    (BadCrc, "crc_errors"),  # before BadFrame, its base
    (BadFrame, "bad_frames"),
    (DeviceException, "exceptions"),
    (LinkDown, "link_errors"),
)


def _counter_name(exc: TransportError) -> str:
    return next(name for kind, name in _COUNTERS if isinstance(exc, kind))


def _count(counters: tuple[RequestCounters, ...], name: str) -> None:
    for c in counters:
        setattr(c, name, getattr(c, name) + 1)
