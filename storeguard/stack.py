"""A whole StoreGuard system on one machine (composition layer): configs and processes.

Used by `storeguard demo`, the end-to-end tests and the benchmarks. Every piece runs as its
own process, started with the same commands an operator would use.
"""

from __future__ import annotations

import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import httpx
import yaml

from storeguard.lane_peripherals import PRINTER_PROFILE, lane_links, peripheral_buses, peripheral_lanes

DEMO_PASSWORD = "storeguard-demo"  # printed by the demo; the embedded setup is for trying it out only


_handed_out: set[int] = set()  # ports this process chose already: never the same one twice


def _ephemeral_range() -> tuple[int, int]:
    try:
        low, high = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
        return int(low), int(high)
    except (OSError, ValueError):
        return 32768, 60999  # Linux's default


def _bindable(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_port(preferred: int | None = None) -> int:
    """`preferred` when it is free (stable URLs for people), else a free port for a server to bind.

    Chosen below the kernel's ephemeral range: a port from that range (what binding port 0
    gives) can be taken as the local end of some outgoing connection (central's own MQTT
    client, say) between choosing it and the server binding it, and the server then fails
    with "address already in use"."""
    if preferred and preferred not in _handed_out and _bindable(preferred):
        _handed_out.add(preferred)
        return preferred
    low, _ = _ephemeral_range()
    first, last = 10_000, max(10_001, low - 1)
    for _attempt in range(200):
        port = random.randint(first, last)
        if port not in _handed_out and _bindable(port):
            _handed_out.add(port)
            return port
    with socket.socket() as sock:  # the low range is crowded: fall back to the kernel's choice
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass(frozen=True)
class StorePlan:
    store_id: str
    name: str
    http_port: int
    lanes_port: int
    control_port: int
    tty_link: Path
    sim_config: Path
    store_config: Path
    peripheral_links: tuple[Path, ...] = ()  # ptys of the lanes' printers and bill validators

    @property
    def page_url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def control_url(self) -> str:
        return f"http://127.0.0.1:{self.control_port}"


@dataclass(frozen=True)
class StackPlan:
    workdir: Path
    mqtt_url: str
    broker_port: int | None  # set when the stack runs its own embedded broker
    central_port: int
    database_url: str
    seed_file: Path
    stores: tuple[StorePlan, ...]
    technicians: dict[str, str] = field(default_factory=dict)  # username -> password

    @property
    def central_url(self) -> str:
        return f"http://127.0.0.1:{self.central_port}"


SEED: dict[str, list[dict[str, Any]]] = {
    "stores": [  # the demo's stores; escalation goes to the store region's supervisor and regional manager
        {"id": "store-001", "name": "Demo store 1 (Harbour Road)", "region": "north"},
        {"id": "store-002", "name": "Demo store 2 (Mill Lane)", "region": "north"},
    ],
    "users": [
        {"username": "admin", "display_name": "Alex Admin", "role": "admin", "password": DEMO_PASSWORD},
        {"username": "dispatch", "display_name": "Dana Dispatch", "role": "dispatcher", "password": DEMO_PASSWORD},
        {"username": "facilities", "display_name": "Fiona Facilities", "role": "facilities",
         "password": DEMO_PASSWORD},
        {"username": "super", "display_name": "Sam Supervisor", "role": "supervisor", "region": "north",
         "password": DEMO_PASSWORD},
        {"username": "regional", "display_name": "Rae Regional", "role": "regional_manager", "region": "north",
         "password": DEMO_PASSWORD},
        {"username": "store1", "display_name": "Sasha Store", "role": "store_staff", "store": "store-001",
         "password": DEMO_PASSWORD},
    ],
    "technicians": [
        {"username": "ana", "display_name": "Ana Ruiz", "password": DEMO_PASSWORD,
         "skills": ["refrigeration"], "region": "north"},
        {"username": "ben", "display_name": "Ben Okafor", "password": DEMO_PASSWORD,
         "skills": ["refrigeration", "self_checkout"], "region": "north"},
        {"username": "chen", "display_name": "Chen Wei", "password": DEMO_PASSWORD,
         "skills": ["self_checkout"], "region": "north"},
        {"username": "dev", "display_name": "Dev Patel", "password": DEMO_PASSWORD,
         "skills": ["electrical", "controls"], "region": "north"},
    ],
}

# Demo speed: rule delays in seconds rather than the profiles' production minutes.
FAST_RULES = {
    "dixell-xr75cx": {"high_temperature": {"delay_s": 20}, "door_open": {"delay_s": 8}, "probe_fault": {"delay_s": 5}},
    "danfoss-ak-cc55": {"high_temperature": {"delay_s": 20}, "door_open": {"delay_s": 8}, "probe_fault": {"delay_s": 5}},
    "storeguard-sco-lane": {"lane_out_of_service": {"delay_s": 5}, "printer_offline": {"delay_s": 5},
                            "paper_end": {"delay_s": 5}, "printer_cover_open": {"delay_s": 5}},
    PRINTER_PROFILE: {"paper_end": {"delay_s": 5}, "printer_cover_open": {"delay_s": 5}},
}

STORE_LAYOUTS: list[dict[str, Any]] = [
    {
        "name": "Northgate Superstore",
        "cases": [("case-01", 1, "dixell-xr75cx", "Aisle 3, dairy case 1", 3.0),
                  ("case-02", 2, "dixell-xr75cx", "Aisle 3, dairy case 2", 3.0),
                  ("case-03", 3, "danfoss-ak-cc55", "Aisle 5, meat case", 1.0)],
        "lanes": [("lane-01", 1, "Self-checkout lane 1"), ("lane-02", 2, "Self-checkout lane 2")],
        "peripherals": True,  # each lane's receipt printer (ESC/POS) and bill validator (ccTalk) on ptys
        "scenario": [{"at_s": 8, "device": "case-01", "fault": "door_open", "duration_s": 90},
                     {"at_s": 20, "device": "case-02", "fault": "compressor_dead"}],
    },
    {
        "name": "Riverside Market",
        "cases": [("case-01", 1, "danfoss-ak-cc55", "Aisle 1, produce case", 2.0),
                  ("case-02", 2, "dixell-xr75cx", "Aisle 2, dairy case", 3.0)],
        "lanes": [("lane-01", 1, "Self-checkout lane 1"), ("lane-02", 2, "Self-checkout lane 2")],
        "peripherals": True,
        "scenario": [{"at_s": 12, "device": "lane-01", "fault": "paper_near_end"},
                     {"at_s": 25, "device": "lane-02", "fault": "bill_jam"}],
    },
]


def _dump(path: Path, data: object) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(data, sort_keys=False, allow_unicode=True))
    return path


def plan_stack(
    workdir: Path,
    *,
    mqtt_url: str | None = None,
    database_url: str | None = None,
    store_count: int = 2,
    scenario: bool = True,
    time_scale: float = 60.0,
    poll_interval_s: float = 1.0,
    stable_ports: bool = False,
    layouts: list[dict[str, Any]] | None = None,
) -> StackPlan:
    """Write every config file of a local system into `workdir` and say where things listen.

    With `stable_ports`, central takes 8080, the store pages 8081 and up, and the broker 1883,
    when they are free.
    """

    def port(preferred: int) -> int:
        return free_port(preferred if stable_ports else None)

    workdir = workdir.resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    broker_port = None
    if mqtt_url is None:
        broker_port = port(1883)
        mqtt_url = f"mqtt://127.0.0.1:{broker_port}"
    database_url = database_url or f"sqlite:///{workdir / 'central.db'}"
    seed_file = _dump(workdir / "seed.yaml", {**SEED, "stores": SEED["stores"][:store_count]})
    stores = []
    layouts = layouts or STORE_LAYOUTS
    for index in range(store_count):
        layout = layouts[index % len(layouts)]
        store_id = f"store-{index + 1:03d}"
        plan = StorePlan(
            store_id=store_id,
            name=layout["name"] if index < len(layouts) else f"{layout['name']} {index + 1}",
            http_port=port(8081 + index),
            lanes_port=free_port(),
            control_port=free_port(),
            tty_link=workdir / store_id / "ttyRS485",
            sim_config=workdir / store_id / "simulators.yaml",
            store_config=workdir / store_id / "store.yaml",
            peripheral_links=tuple(
                link for lane in peripheral_lanes(layout) for link in lane_links(workdir / store_id, lane[0])
            ),
        )
        _write_store_configs(plan, layout, mqtt_url, scenario, time_scale, poll_interval_s, workdir)
        stores.append(plan)
    technicians = {t["username"]: t["password"] for t in SEED["technicians"]}
    return StackPlan(workdir, mqtt_url, broker_port, port(8080), database_url, seed_file, tuple(stores), technicians)


def _write_store_configs(plan: StorePlan, layout: dict[str, Any], mqtt_url: str, scenario: bool,
                         time_scale: float, poll_interval_s: float, workdir: Path) -> None:
    cases = layout["cases"]
    lanes = layout["lanes"]
    baudrate = 19200  # a mixed bus runs at one speed; the AK-CC55 auto-bauds, the XR is set to match
    sim_peripherals, store_peripherals = peripheral_buses(
        plan.store_config.parent, layout, poll_interval_s, FAST_RULES[PRINTER_PROFILE]
    )
    _dump(plan.sim_config, {
        "time_scale": time_scale,
        "control": {"host": "127.0.0.1", "port": plan.control_port},
        "buses": [
            {"name": "rs485-1", "transport": "rtu", "link": str(plan.tty_link), "baudrate": baudrate,
             "devices": [{"id": d, "unit": u, "profile": p, "setpoint": sp} for d, u, p, _, sp in cases]},
            {"name": "lanes", "transport": "tcp", "host": "127.0.0.1", "port": plan.lanes_port,
             "devices": [{"id": d, "unit": u, "profile": "storeguard-sco-lane"} for d, u, _ in lanes]},
            *sim_peripherals,
        ],
        "scenario": layout["scenario"] if scenario else [],
    })
    case_devices = [{"id": d, "unit": u, "profile": p, "location": loc, "rules": FAST_RULES.get(p, {})}
                    for d, u, p, loc, _ in cases]
    lane_devices = [{"id": d, "unit": u, "profile": "storeguard-sco-lane", "location": loc,
                     "rules": FAST_RULES["storeguard-sco-lane"]} for d, u, loc in lanes]
    _dump(plan.store_config, {
        "store_id": plan.store_id,
        "name": plan.name,
        "mqtt": {"url": mqtt_url, "username": plan.store_id, "password": DEMO_PASSWORD},
        "outbox": {"path": str(workdir / plan.store_id / "outbox.db")},
        "http": {"host": "127.0.0.1", "port": plan.http_port},
        "telemetry_interval_s": 10,
        "buses": [
            {"name": "rs485-1", "transport": "rtu", "port": str(plan.tty_link),
             "serial": {"baudrate": baudrate, "bytesize": 8, "parity": "N", "stopbits": 1},
             "poll_interval_s": poll_interval_s, "devices": case_devices},
            {"name": "lanes", "transport": "tcp", "host": "127.0.0.1", "tcp_port": plan.lanes_port,
             "poll_interval_s": poll_interval_s, "devices": lane_devices},
            *store_peripherals,
        ],
    })


class ProcessGroup:
    """Child processes with their output in log files (and optionally echoed with a prefix)."""

    def __init__(self, logdir: Path, echo: Callable[[str], None] | None = None) -> None:
        self.logdir = logdir
        self.logdir.mkdir(parents=True, exist_ok=True)
        self.echo = echo
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self._pumps: list[threading.Thread] = []

    def start(self, name: str, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
        if name in self.procs and self.procs[name].poll() is None:
            raise RuntimeError(f"{name} is already running")
        argv = [sys.executable, "-m", "storeguard", *args]
        child_env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=child_env,
                                start_new_session=True)
        self.procs[name] = proc
        log = open(self.logdir / f"{name}.log", "ab")  # noqa: SIM115 - closed by the pump
        pump = threading.Thread(target=self._pump, args=(name, proc.stdout, log), daemon=True)
        pump.start()
        self._pumps.append(pump)
        return proc

    def _pump(self, name: str, stream: IO[bytes] | None, log: IO[bytes]) -> None:
        assert stream is not None
        with log:
            for line in stream:
                log.write(line)
                log.flush()
                if self.echo:
                    self.echo(f"[{name}] {line.decode(errors='replace').rstrip()}")

    def running(self, name: str) -> bool:
        proc = self.procs.get(name)
        return proc is not None and proc.poll() is None

    def exit_code(self, name: str) -> int | None:
        proc = self.procs.get(name)
        return None if proc is None else proc.poll()

    def stop(self, name: str, *, kill: bool = False, timeout: float = 10.0) -> None:
        self._stop([name], kill=kill, timeout=timeout)

    def stop_all(self, timeout: float = 10.0) -> None:
        self._stop(list(self.procs), kill=False, timeout=timeout)

    def _stop(self, names: list[str], *, kill: bool, timeout: float) -> None:
        """Signal every process first, then wait for all on one deadline; SIGKILL stragglers.

        A second Ctrl-C meanwhile does not leave processes behind: it is ignored until done.
        """
        in_main = threading.current_thread() is threading.main_thread()
        previous = signal.signal(signal.SIGINT, signal.SIG_IGN) if in_main else None
        try:
            live = [self.procs[n] for n in names if n in self.procs and self.procs[n].poll() is None]
            for proc in live:
                proc.send_signal(signal.SIGKILL if kill else signal.SIGTERM)
            deadline = time.monotonic() + timeout
            for proc in live:
                try:
                    proc.wait(timeout=max(0.1, deadline - time.monotonic()))
                except subprocess.TimeoutExpired:
                    proc.kill()
            for proc in live:
                try:
                    proc.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    pass  # unkillable (D state): nothing more a user-space parent can do
        finally:
            if in_main:
                signal.signal(signal.SIGINT, previous)

    def tail(self, name: str, lines: int = 20) -> str:
        path = self.logdir / f"{name}.log"
        if not path.exists():
            return ""
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


def wait_until(predicate: Callable[[], bool], timeout: float, what: str, interval: float = 0.2) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if predicate():
                return
        except (httpx.HTTPError, OSError):
            pass
        time.sleep(interval)
    raise TimeoutError(f"{what} did not happen within {timeout:.0f} s")


def _port_open(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.3).close()
        return True
    except OSError:
        return False


def _http_ok(url: str) -> bool:
    return httpx.get(url, timeout=1.0).status_code == 200


class Stack:
    """Starts and stops the processes of a StackPlan."""

    def __init__(self, plan: StackPlan, *, echo: Callable[[str], None] | None = None) -> None:
        self.plan = plan
        self.procs = ProcessGroup(plan.workdir / "logs", echo)

    def start_broker(self) -> None:
        if self.plan.broker_port is None:
            return
        self.procs.start("broker", "broker", "--port", str(self.plan.broker_port))
        self._ready("broker", lambda: _port_open(self.plan.broker_port or 0))

    def start_central(self) -> None:
        self.procs.start("central", "central", "--database-url", self.plan.database_url,
                         "--mqtt-url", self.plan.mqtt_url, "--mqtt-username", "central",
                         "--mqtt-password", DEMO_PASSWORD, "--port", str(self.plan.central_port),
                         "--seed", str(self.plan.seed_file))
        self._ready("central", lambda: _http_ok(f"{self.plan.central_url}/healthz"), timeout=60)

    def start_simulators(self, store: StorePlan) -> None:
        name = f"sim-{store.store_id}"
        self.procs.start(name, "simulate", "--config", str(store.sim_config))
        self._ready(name, lambda: store.tty_link.exists() and _port_open(store.lanes_port)
                    and all(link.exists() for link in store.peripheral_links))

    def start_store(self, store: StorePlan) -> None:
        name = f"gw-{store.store_id}"
        self.procs.start(name, "store", "--config", str(store.store_config))
        self._ready(name, lambda: _http_ok(f"{store.page_url}/healthz"))

    def start_all(self) -> None:
        self.start_broker()
        self.start_central()
        for store in self.plan.stores:
            self.start_simulators(store)
        for store in self.plan.stores:
            self.start_store(store)

    def _ready(self, name: str, predicate: Callable[[], bool], timeout: float = 30.0) -> None:
        def check() -> bool:
            if not self.procs.running(name):
                raise RuntimeError(
                    f"{name} exited with code {self.procs.exit_code(name)} while starting:\n{self.procs.tail(name)}"
                )
            return predicate()

        try:
            wait_until(check, timeout, f"{name} becoming ready")
        except TimeoutError as exc:
            raise RuntimeError(f"{exc}; its log ends with:\n{self.procs.tail(name)}") from None

    def stop_all(self) -> None:
        self.procs.stop_all()


@contextmanager
def running_stack(plan: StackPlan, *, echo: Callable[[str], None] | None = None) -> Iterator[Stack]:
    stack = Stack(plan, echo=echo)
    try:
        stack.start_all()
        yield stack
    finally:
        stack.stop_all()
