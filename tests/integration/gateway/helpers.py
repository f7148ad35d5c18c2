"""Helpers for the gateway's integration tests: a paho client playing central, a running store
gateway as an async context manager, and polling until a condition holds."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any, Self
from urllib.parse import urlsplit

import aiohttp
import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

from gateway.config import StoreConfig
from gateway.runtime import StoreReady, run_store
from protocols.mqtt.messages import FaultEvent, Message, parse_message
from tests.support.services import MosquittoProcess
from tests.unit.gateway.fakes import FakeEdges


@dataclass(frozen=True)
class Received:
    topic: str
    payload: bytes
    qos: int
    retain: bool

    def message(self) -> Message:
        return parse_message(self.topic, self.payload)


class Central:
    """Subscribes to every store's uplink with a persistent session (QoS 1) and publishes downlink."""

    def __init__(self, url: str, *, subscribe: str | None = "storeguard/v1/+/+", persistent: bool = True) -> None:
        parts = urlsplit(url)
        self._subscription = subscribe
        self._lock = threading.Lock()
        self._received: list[Received] = []
        self.connected = threading.Event()
        self.client = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"test-central-{uuid.uuid4().hex[:8]}",
                                  clean_session=not persistent, protocol=MQTTProtocolVersion.MQTTv311)
        self.client.reconnect_delay_set(0.1, 0.5)  # type: ignore[arg-type]
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_message = self._on_message
        self.client.connect_async(parts.hostname or "127.0.0.1", parts.port or 1883, keepalive=10)

    def __enter__(self) -> Self:
        self.client.loop_start()
        if not self.connected.wait(10):
            raise TimeoutError("central test client did not connect")
        return self

    def __exit__(self, *exc: object) -> None:
        self.client.disconnect()
        self.client.loop_stop()

    def _on_connect(self, client: paho.Client, userdata: Any, flags: Any, rc: Any, props: Any) -> None:
        if self._subscription:
            client.subscribe(self._subscription, qos=1)
        self.connected.set()

    def _on_disconnect(self, client: paho.Client, userdata: Any, flags: Any, rc: Any, props: Any) -> None:
        self.connected.clear()

    def _on_message(self, client: paho.Client, userdata: Any, message: paho.MQTTMessage) -> None:
        with self._lock:
            self._received.append(Received(message.topic, bytes(message.payload), message.qos, bool(message.retain)))

    def received(self, kind: str | None = None) -> list[Received]:
        with self._lock:
            found = list(self._received)
        return [r for r in found if kind is None or r.topic.endswith("/" + kind)]

    def faults(self) -> list[FaultEvent]:
        events = [r.message() for r in self.received("fault")]
        return [e for e in events if isinstance(e, FaultEvent)]

    def publish(self, topic: str, payload: bytes, qos: int = 1) -> None:
        info = self.client.publish(topic, payload, qos=qos)
        info.wait_for_publish(5)


async def save_broker_sessions(broker: MosquittoProcess) -> None:
    """Make Mosquitto write its persistent sessions now (SIGUSR1), so they survive a kill -9."""
    assert broker.proc is not None
    db = broker.workdir / "data" / "mosquitto.db"
    before = db.stat().st_mtime_ns if db.exists() else 0
    os.kill(broker.proc.pid, signal.SIGUSR1)
    await eventually(lambda: db.exists() and db.stat().st_mtime_ns != before, what="mosquitto to save its sessions")


async def eventually(check: Callable[[], Any], *, timeout: float = 10.0, what: str = "condition") -> Any:
    """Poll `check` (plain or async) until it returns something truthy; return that."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        await asyncio.sleep(0.05)


class RunningStore:
    def __init__(self, ready: StoreReady, edges: FakeEdges, http: aiohttp.ClientSession) -> None:
        self.ready = ready
        self.edges = edges
        self.http = http

    @property
    def url(self) -> str:
        return self.ready.url

    async def get_json(self, path: str) -> Any:
        async with self.http.get(self.url + path) as response:
            assert response.status == 200, await response.text()
            return await response.json()

    async def get_text(self, path: str) -> tuple[int, str, str]:
        async with self.http.get(self.url + path) as response:
            return response.status, response.headers.get("Content-Type", ""), await response.text()

    async def state(self) -> Any:
        return await self.get_json("/api/state")

    async def wait_connected(self, connected: bool = True, timeout: float = 10.0) -> None:
        async def check() -> bool:
            return bool((await self.state())["mqtt"]["connected"] == connected)
        await eventually(check, timeout=timeout, what=f"mqtt connected={connected}")

    async def wait_outbox_empty(self, timeout: float = 10.0) -> None:
        async def check() -> bool:
            return bool((await self.state())["outbox"]["depth"] == 0)
        await eventually(check, timeout=timeout, what="an empty outbox")


@contextlib.asynccontextmanager
async def running_store(config: StoreConfig, edges: FakeEdges | None = None) -> AsyncIterator[RunningStore]:
    edges = edges or FakeEdges()
    ready = StoreReady()
    task = asyncio.create_task(run_store(config, ready=ready, edge_factory=edges))
    waiter = asyncio.create_task(ready.wait())
    done, _ = await asyncio.wait({task, waiter}, timeout=15, return_when=asyncio.FIRST_COMPLETED)
    if task in done:
        waiter.cancel()
        task.result()  # raises what stopped it
    if waiter not in done:
        task.cancel()
        raise TimeoutError("store gateway did not become ready")
    try:
        async with aiohttp.ClientSession() as http:
            yield RunningStore(ready, edges, http)
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.wait_for(task, 10)
