"""Central as production runs it, for benchmarks and the two-worker test: a private Mosquitto,
a private PostgreSQL and N `storeguard central` worker processes sharing one `$share` group.

Each worker has its own MQTT client id and HTTP port; all load the same seed (20 refrigeration
technicians by default). Workers can be SIGKILLed and restarted with the same client id, so the
broker hands the restarted one its session's unacknowledged messages.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx
import paho.mqtt.client as mqtt
from sqlalchemy import Engine, text

from central.auth.passwords import hash_password
from central.db import create_db_engine, migrate
from storeguard.stack import free_port
from tests.support.services import MosquittoProcess, PostgresCluster


def write_seed(path: Path, technicians: int) -> None:
    digest = hash_password("bench-password-1")
    lines = ["technicians:"]
    for i in range(technicians):
        lines.append(f"  - {{username: tech{i:02d}, display_name: Tech {i}, password_hash: \"{digest}\", "
                     "skills: [refrigeration], region: north}")
    path.write_text("\n".join(lines) + "\n")


def mqtt_client(client_id: str, port: int, *, on_message: Any = None, subscribe: str | None = None,
                max_inflight: int = 100) -> mqtt.Client:
    """A connected paho client (its network loop running); subscribed before this returns when asked."""
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=True)
    client.max_inflight_messages_set(max_inflight)
    client.max_queued_messages_set(0)
    if on_message is not None:
        client.on_message = on_message
    client.connect("127.0.0.1", port, keepalive=30)
    client.loop_start()
    if subscribe is not None:
        subscribed: set[int] = set()
        client.on_subscribe = lambda _c, _u, m, _r, _p: subscribed.add(m)
        _result, mid = client.subscribe(subscribe, qos=1)
        deadline = time.monotonic() + 10
        while mid not in subscribed:
            if time.monotonic() > deadline:
                raise RuntimeError(f"{client_id} could not subscribe to {subscribe}")
            time.sleep(0.01)
    return client


def close_clients(clients: list[mqtt.Client]) -> None:
    for client in clients:
        client.disconnect()
        client.loop_stop()


class CentralCluster:
    def __init__(self, workdir: Path, *, workers: int = 2, durable: bool = True, technicians: int = 20,
                 share_group: str = "central", env: dict[str, str] | None = None) -> None:
        self.workdir = workdir
        self.broker = MosquittoProcess(workdir=workdir / "mosquitto", max_inflight_messages=1000)
        self.postgres = PostgresCluster(durable=durable)
        self.share_group = share_group
        self.technicians = technicians
        self.env = env or {}
        self.ports = [free_port() for _ in range(workers)]
        self.procs: list[subprocess.Popen[bytes] | None] = [None] * workers
        self.db_url = ""
        self._engine: Engine | None = None

    def __enter__(self) -> CentralCluster:
        self.workdir.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(self.workdir / "mosquitto", ignore_errors=True)  # no sessions from an earlier run
        for log in self.workdir.glob("central-*.log"):
            log.unlink()
        try:
            self.broker.start()
            self.postgres.start()
            self.db_url = self.postgres.create_database()
            migrate(self.db_url)
            write_seed(self.workdir / "seed.yaml", self.technicians)
            for index in range(len(self.ports)):
                self.start_worker(index, wait=False)
            for index in range(len(self.ports)):
                self.wait_healthy(index)
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, _type: type[BaseException] | None, _exc: BaseException | None,
                 _tb: TracebackType | None) -> None:
        self.close()

    @property
    def engine(self) -> Engine:
        if self._engine is None:
            self._engine = create_db_engine(self.db_url)
        return self._engine

    def scalar(self, sql: str, **params: Any) -> Any:
        with self.engine.connect() as connection:
            return connection.execute(text(sql), params).scalar_one()

    def rows(self, sql: str, **params: Any) -> list[Any]:
        with self.engine.connect() as connection:
            return list(connection.execute(text(sql), params))

    # --- workers ---
    def start_worker(self, index: int, *, wait: bool = True) -> None:
        env = {**os.environ, "STOREGUARD_MQTT_CLIENT_ID": f"central-worker-{index}",
               "STOREGUARD_MQTT_SHARE_GROUP": self.share_group, **self.env}
        command = [sys.executable, "-m", "storeguard", "central", "--database-url", self.db_url,
                   "--mqtt-url", self.broker.url, "--host", "127.0.0.1", "--port", str(self.ports[index]),
                   "--seed", str(self.workdir / "seed.yaml")]
        log = (self.workdir / f"central-{index}.log").open("ab")
        self.procs[index] = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
        log.close()
        if wait:
            self.wait_healthy(index)

    def kill_worker(self, index: int) -> None:
        """SIGKILL: no shutdown, no drain; what it held is released by the broker and PostgreSQL."""
        proc = self.procs[index]
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            proc.wait(10)
        self.procs[index] = None

    def wait_healthy(self, index: int, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            proc = self.procs[index]
            if proc is not None and proc.poll() is not None:
                raise RuntimeError(f"central worker {index} exited ({proc.returncode}); see "
                                   f"{self.workdir / f'central-{index}.log'}")
            try:
                body = httpx.get(f"http://127.0.0.1:{self.ports[index]}/healthz", timeout=2).json()
                if body.get("status") == "ok" and set(body["mqtt"].values()) == {"connected"}:
                    return
            except (httpx.HTTPError, ValueError, KeyError):
                pass
            time.sleep(0.2)
        raise RuntimeError(f"central worker {index} did not become healthy in {timeout:.0f} s")

    def counter(self, index: int, name: str, **labels: str) -> float:
        """A counter of one worker's /metrics (summed over label sets that include `labels`)."""
        wanted = [f'{k}="{v}"' for k, v in labels.items()]
        total = 0.0
        text_body = httpx.get(f"http://127.0.0.1:{self.ports[index]}/metrics", timeout=5).text
        for line in text_body.splitlines():
            series, _, value = line.rpartition(" ")
            if (series == name or series.startswith(name + "{")) and all(w in series for w in wanted):
                total += float(value)
        return total

    def close(self) -> None:
        for proc in self.procs:
            if proc is not None and proc.poll() is None:
                proc.terminate()
        for index, proc in enumerate(self.procs):
            if proc is None:
                continue
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
            self.procs[index] = None
        if self._engine is not None:
            self._engine.dispose()
            self._engine = None
        self.broker.kill()
        self.postgres.cleanup()
