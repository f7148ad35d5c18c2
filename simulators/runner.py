"""Running the simulators (simulators layer): servers, model ticks, scenario and control API.

`Simulators` is the long-lived resource (an async context manager that binds everything on
enter and releases it, links included, on exit); `run()` drives time until cancelled.
`run_simulators()` is the one-call form for the CLI and tests.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import time
from collections.abc import Callable
from contextlib import AsyncExitStack
from pathlib import Path
from types import TracebackType

from aiohttp import web

from device_profiles.loader import ProfileRegistry
from simulators.config import CcTalkBusSpec, EscPosBusSpec, RtuBusSpec, ScenarioStep, SimulatorConfig
from simulators.control import create_control_app
from simulators.errors import SimulatorError
from simulators.faults import ActiveFault, Fault
from simulators.peripherals import PeripheralSerialServer
from simulators.peripherals.fleet import PeripheralFleet, PeripheralLine
from simulators.rtu_server import ModbusRtuServer
from simulators.simulation import Clock, Simulation
from simulators.tcp_server import ModbusTcpServer

log = logging.getLogger(__name__)


class Simulators:
    """Every configured bus served, plus the control API. The handle tests and the CLI hold."""

    def __init__(
        self, config: SimulatorConfig, *, registry: ProfileRegistry | None = None, clock: Clock = time.monotonic
    ) -> None:
        self.config = config
        self._registry = registry
        self._clock = clock
        self.simulation: Simulation | None = None
        self.rtu_servers: dict[str, ModbusRtuServer] = {}
        self.tcp_servers: dict[str, ModbusTcpServer] = {}
        self.peripherals = PeripheralFleet(clock=clock)  # escpos / cctalk devices, by id
        self.peripheral_servers: dict[str, PeripheralSerialServer] = {}  # by bus name
        self.control_url: str | None = None
        self._stack = AsyncExitStack()

    async def __aenter__(self) -> Simulators:
        registry = self._registry or ProfileRegistry.load(self.config.profiles_dirs)
        simulation = Simulation.from_config(self.config, registry, clock=self._clock)
        self.simulation = simulation
        try:
            await self._start_peripherals(registry)
            for bus in self.config.buses:
                if isinstance(bus, EscPosBusSpec | CcTalkBusSpec):
                    continue
                devices = simulation.devices(bus.name)
                units = ", ".join(f"{d.unit} ({d.device_id}, {d.profile.model})" for d in devices)
                if isinstance(bus, RtuBusSpec):
                    rtu = ModbusRtuServer(
                        devices,
                        link=bus.link,
                        baudrate=bus.baudrate,
                        wire_timing=bus.wire_timing,
                        turnaround_s=bus.turnaround_ms / 1000,
                    )
                    self.rtu_servers[bus.name] = await self._stack.enter_async_context(rtu)
                    timing = "wire-timed" if bus.wire_timing else "untimed"
                    log.info(
                        "simulator bus %s: Modbus RTU at %s -> %s, %d baud %s, units %s",
                        bus.name, rtu.link, rtu.slave_name, bus.baudrate, timing, units,
                    )  # fmt: skip
                else:
                    tcp = ModbusTcpServer(devices, host=bus.host, port=bus.port)
                    self.tcp_servers[bus.name] = await self._stack.enter_async_context(tcp)
                    log.info("simulator bus %s: Modbus TCP at %s:%d, units %s", bus.name, tcp.host, tcp.port, units)
            if self.config.control.enabled:
                await self._start_control(simulation)
        except BaseException:
            await self._stack.aclose()
            raise
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self._stack.aclose()

    async def _start_peripherals(self, registry: ProfileRegistry) -> None:
        """One pty per escpos or cctalk bus; on a ccTalk line each device answers its own address."""
        for bus in self.config.buses:
            if not isinstance(bus, EscPosBusSpec | CcTalkBusSpec):
                continue
            entries = []
            for spec in bus.devices:
                profile = registry.get(spec.profile)
                entries.append(self.peripherals.add(spec.id, bus=bus.name, unit=spec.unit, profile=profile.model,
                                                    kind=profile.kind))  # fmt: skip
            echo = isinstance(bus, CcTalkBusSpec) and bus.echo
            server = PeripheralSerialServer(PeripheralLine(entries), link=bus.link, echo=echo)
            self.peripheral_servers[bus.name] = await self._stack.enter_async_context(server)
            names = ", ".join(f"{e.device_id} ({e.kind})" for e in entries)
            log.info("simulator bus %s: %s at %s -> %s, %s%s", bus.name, bus.transport, server.link,
                     server.slave_name, names, " with echo" if echo else "")  # fmt: skip

    async def _start_control(self, simulation: Simulation) -> None:
        spec = self.config.control
        runner = web.AppRunner(create_control_app(simulation, self.peripherals), access_log=None)
        await runner.setup()
        self._stack.push_async_callback(runner.cleanup)
        family = socket.AF_INET6 if ":" in spec.host else socket.AF_INET
        try:  # bound here so that port 0 can be read back
            sock = socket.create_server((spec.host, spec.port), family=family)
        except OSError as exc:
            raise SimulatorError(f"cannot serve the control API on {spec.host}:{spec.port}: {exc}") from exc
        site = web.SockSite(runner, sock)
        await site.start()
        host, port = sock.getsockname()[:2]
        self.control_url = f"http://[{host}]:{port}" if family == socket.AF_INET6 else f"http://{host}:{port}"
        log.info("simulator control API at %s", self.control_url)

    # --- what callers use -------------------------------------------------------------------

    def tcp_port(self, bus: str) -> int:
        return self.tcp_servers[bus].port

    def rtu_link(self, bus: str) -> Path:
        return self.rtu_servers[bus].link

    def inject(
        self, device_id: str, fault: Fault | str, duration_s: float | None = None, *, code: int | None = None
    ) -> ActiveFault:
        if device_id in self.peripherals:
            return self.peripherals.inject(device_id, fault, duration_s, code=code)
        return self._sim().inject(device_id, fault, duration_s, code=code)

    def clear(self, device_id: str, fault: Fault | str) -> bool:
        if device_id in self.peripherals:
            return self.peripherals.clear(device_id, fault)
        return self._sim().clear(device_id, fault)

    async def run(self) -> None:
        """Tick the models and play the scenario until cancelled."""
        async with asyncio.TaskGroup() as group:
            group.create_task(self._tick_loop())
            if self.config.scenario:
                group.create_task(self._play(self.config.scenario))

    def _sim(self) -> Simulation:
        if self.simulation is None:
            raise SimulatorError("the simulators are not started (use 'async with Simulators(config)')")
        return self.simulation

    async def _tick_loop(self) -> None:
        simulation = self._sim()
        while True:
            await asyncio.sleep(self.config.tick_s)
            simulation.tick()
            self.peripherals.tick()

    async def _play(self, scenario: list[ScenarioStep]) -> None:
        loop = asyncio.get_running_loop()
        start = loop.time()
        for step in sorted(scenario, key=lambda s: s.at_s):
            await asyncio.sleep(max(0.0, start + step.at_s - loop.time()))
            self.inject(step.device, step.fault, step.duration_s, code=step.code)
            until = f" for {step.duration_s:g} s" if step.duration_s else ""
            log.info("scenario: %s on %s%s", step.fault.value, step.device, until)


async def run_simulators(
    config: SimulatorConfig,
    *,
    ready: asyncio.Event | None = None,
    on_ready: Callable[[Simulators], None] | None = None,
    registry: ProfileRegistry | None = None,
) -> None:
    """Serve every bus, tick the models, play the scenario and the control API until cancelled.

    `ready` is set once everything listens; `on_ready` receives the handle first (bound ports,
    links, control URL, inject/clear). Links are removed on the way out.
    """
    async with Simulators(config, registry=registry) as simulators:
        if on_ready is not None:
            on_ready(simulators)
        if ready is not None:
            ready.set()
        await simulators.run()
