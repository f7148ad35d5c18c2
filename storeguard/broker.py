"""Embedded MQTT broker (composition layer): amqtt in-process, for the demo and one store.

Pure Python and single-process: fine for a demo or a single store; production uses
Mosquitto or an EMQX cluster (docs/deployment.md).
"""

from __future__ import annotations

import asyncio
import logging

from amqtt.broker import Broker  # type: ignore[import-untyped]

log = logging.getLogger(__name__)


def broker_config(host: str, port: int) -> dict[str, object]:
    return {
        "listeners": {"default": {"type": "tcp", "bind": f"{host}:{port}"}},
        "plugins": {
            # Clients must give a username: amqtt keeps offline QoS 1 messages only for
            # non-anonymous persistent sessions (the store downlink and central ingest need them).
            "amqtt.plugins.authentication.AnonymousAuthPlugin": {"allow_anonymous": False},
        },
    }


async def run_broker(host: str = "127.0.0.1", port: int = 1883, *, ready: asyncio.Event | None = None) -> None:
    """Serve MQTT on host:port until cancelled."""
    broker = Broker(broker_config(host, port))
    try:
        await broker.start()
    except OSError as exc:
        raise RuntimeError(f"cannot listen on {host}:{port} ({exc.strerror}); pick another --port") from exc
    log.info("embedded MQTT broker (amqtt) listening on mqtt://%s:%d", host, port)
    if ready is not None:
        ready.set()
    try:
        await asyncio.Event().wait()
    finally:
        await asyncio.shield(broker.shutdown())
