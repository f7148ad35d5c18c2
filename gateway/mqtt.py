"""The store's MQTT session (gateway layer): paho-mqtt 2.2 in its own thread, bridged to asyncio.

MQTT 3.1.1, clean_session=False and a stable client id, so QoS 1 ticket statuses sent
while the store was away are delivered on reconnect. paho reconnects by itself with
exponential backoff. The last will is a retained StoreHealth(online=false), rebuilt before
every connect so each one carries a fresh message id.

Every paho callback runs in paho's thread and is handed to the event loop with
`call_soon_threadsafe`; state is only touched on the loop. Received messages are
acknowledged manually, after they are stored, so a crash before storing means redelivery.
They wait in a bounded queue; a message that doesn't fit is counted and left unacknowledged
(the broker redelivers it after the next reconnect).
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol, Self

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode, MQTTProtocolVersion

from edge.clock import Clock
from gateway.config import MqttSettings
from gateway.errors import LinkBusy, LinkError
from gateway.metrics import GatewayMetrics
from protocols.mqtt.topics import TopicKind, topic

log = logging.getLogger(__name__)

DOWNLINK_QUEUE = 1000
FINAL_PUBLISH_TIMEOUT_S = 1.0


class LinkListener(Protocol):
    """Link events, delivered on the event loop."""

    def link_up(self) -> None: ...

    def link_down(self) -> None: ...

    def acked(self, mid: int) -> None: ...


@dataclass(frozen=True, slots=True)
class Downlink:
    topic: str
    payload: bytes
    qos: int
    mid: int


@dataclass(frozen=True, slots=True)
class LinkStatus:
    connected: bool
    broker: str
    since: datetime | None  # when the link last came up or went down
    last_contact_at: datetime | None  # last CONNACK, PUBACK or message from the broker


class MqttSession:
    """An async context manager around one paho client (publisher side implements `Publisher`)."""

    def __init__(self, settings: MqttSettings, *, store_id: str, listener: LinkListener,
                 will: Callable[[], bytes], clock: Clock, metrics: GatewayMetrics,
                 downlink_limit: int = DOWNLINK_QUEUE) -> None:
        self._settings = settings
        self._listener = listener
        self._will = will
        self._clock = clock
        self._metrics = metrics
        self._health_topic = topic(store_id, TopicKind.HEALTH)
        self._downlink_topic = topic(store_id, TopicKind.TICKET_STATUS)
        self._config_topic = topic(store_id, TopicKind.CONFIG)  # retained: the newest arrives on every subscribe
        self.downlink: asyncio.Queue[Downlink] = asyncio.Queue(maxsize=downlink_limit)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._client: paho.Client | None = None
        self._open = False
        self._closing = False
        self._connected = False
        self._since: datetime | None = None
        self._last_contact: datetime | None = None
        self._failing = False  # log the first failure, count the rest, log the recovery

    # -- lifecycle ------------------------------------------------------------------------------
    async def __aenter__(self) -> Self:
        self._loop = asyncio.get_running_loop()
        s = self._settings
        client = paho.Client(CallbackAPIVersion.VERSION2, client_id=s.client_id, clean_session=False,
                             protocol=MQTTProtocolVersion.MQTTv311, manual_ack=True)
        if s.username:
            client.username_pw_set(s.username, s.password.get_secret_value() if s.password else None)
        client.reconnect_delay_set(s.reconnect_min_s, s.reconnect_max_s)  # type: ignore[arg-type]  # floats work
        client.max_inflight_messages_set(s.inflight_window)
        client.max_queued_messages_set(s.inflight_window * 10)
        client.on_pre_connect = self._on_pre_connect
        client.on_socket_open = self._on_socket_open
        client.on_connect = self._on_connect
        client.on_connect_fail = self._on_connect_fail
        client.on_disconnect = self._on_disconnect
        client.on_publish = self._on_publish
        client.on_subscribe = self._on_subscribe
        client.on_message = self._on_message
        client.connect_async(s.host, s.port, keepalive=s.keepalive_s)
        self._client = client
        self._open = True
        client.loop_start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        client = self._require()
        self._closing = True
        try:
            client.disconnect()
            await asyncio.to_thread(client.loop_stop)
        finally:
            self._open = False
            self._connected = False

    # -- Publisher --------------------------------------------------------------------------------
    @property
    def connected(self) -> bool:
        return self._connected

    def publish(self, topic: str, payload: bytes, qos: int, retain: bool) -> int:
        info = self._require().publish(topic, payload, qos=qos, retain=retain)
        if info.rc == MQTTErrorCode.MQTT_ERR_SUCCESS or (info.rc == MQTTErrorCode.MQTT_ERR_NO_CONN and qos > 0):
            return info.mid  # with QoS 1 paho keeps it and sends it once connected
        if info.rc == MQTTErrorCode.MQTT_ERR_QUEUE_SIZE:
            raise LinkBusy("paho's message queue is full")
        raise LinkError(paho.error_string(info.rc))

    async def publish_final(self, topic: str, payload: bytes) -> bool:
        """Publish a retained QoS 1 message and wait briefly for its PUBACK (for shutdown)."""
        if not self._connected:
            return False
        info = self._require().publish(topic, payload, qos=1, retain=True)
        try:
            await asyncio.to_thread(info.wait_for_publish, FINAL_PUBLISH_TIMEOUT_S)
        except (RuntimeError, ValueError):
            return False
        return info.is_published()

    def ack(self, message: Downlink) -> None:
        """Tell the broker a received message is safely stored."""
        if message.qos > 0:
            self._require().ack(message.mid, message.qos)

    def status(self) -> LinkStatus:
        return LinkStatus(connected=self._connected, broker=f"{self._settings.host}:{self._settings.port}",
                          since=self._since, last_contact_at=self._last_contact)

    def _require(self) -> paho.Client:
        if self._client is None:
            raise RuntimeError("MqttSession used outside 'async with'")
        return self._client

    # -- paho thread ------------------------------------------------------------------------------
    def _post(self, fn: Callable[..., None], *args: Any) -> None:
        loop = self._loop
        if loop is None:
            return
        try:
            loop.call_soon_threadsafe(self._on_loop, fn, args)
        except RuntimeError:
            pass  # the loop closed during shutdown; nothing is waiting for this event any more

    def _on_loop(self, fn: Callable[..., None], args: tuple[Any, ...]) -> None:
        if self._open:
            fn(*args)

    def _on_pre_connect(self, client: paho.Client, userdata: Any) -> None:
        client.will_set(self._health_topic, self._will(), qos=1, retain=True)

    def _on_socket_open(self, client: paho.Client, userdata: Any, sock: Any) -> None:
        try:  # QoS 1 round trips must not wait for Nagle
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except (OSError, AttributeError):
            pass

    def _on_connect(self, client: paho.Client, userdata: Any, flags: paho.ConnectFlags,
                    reason_code: Any, properties: Any) -> None:
        if reason_code.is_failure:
            self._post(self._connect_failed, f"broker refused the connection: {reason_code}")
            return
        client.subscribe([(self._downlink_topic, 1), (self._config_topic, 1)])
        self._post(self._link_up, bool(flags.session_present))

    def _on_connect_fail(self, client: paho.Client, userdata: Any) -> None:
        self._post(self._connect_failed, "cannot reach the broker")

    def _on_disconnect(self, client: paho.Client, userdata: Any, flags: Any, reason_code: Any,
                       properties: Any) -> None:
        self._post(self._link_down, str(reason_code))

    def _on_publish(self, client: paho.Client, userdata: Any, mid: int, reason_code: Any, properties: Any) -> None:
        self._post(self._acked, mid)

    def _on_subscribe(self, client: paho.Client, userdata: Any, mid: int, reason_codes: list[Any],
                      properties: Any) -> None:
        for code in reason_codes:
            if code.is_failure:
                log.error("broker refused a subscription to %s or %s (%s): ticket statuses or desired configs "
                          "will not arrive", self._downlink_topic, self._config_topic, code)

    def _on_message(self, client: paho.Client, userdata: Any, message: paho.MQTTMessage) -> None:
        try:
            name = message.topic
        except UnicodeDecodeError:
            name = "<topic is not UTF-8>"
        self._post(self._received, Downlink(topic=name, payload=bytes(message.payload), qos=message.qos,
                                            mid=message.mid))

    # -- event loop -------------------------------------------------------------------------------
    def _link_up(self, session_present: bool) -> None:
        self._connected = True
        self._since = self._last_contact = self._clock.now()
        self._metrics.mqtt_connects += 1
        log.info("connected to the broker at %s (session %s)", self.status().broker,
                 "resumed" if session_present else "new")
        self._failing = False
        self._listener.link_up()

    def _link_down(self, reason: str) -> None:
        was_connected = self._connected
        self._connected = False
        if was_connected and self._closing:
            log.info("disconnected from the broker at %s", self.status().broker)
        elif was_connected:
            self._since = self._clock.now()
            self._metrics.mqtt_disconnects += 1
            log.warning("lost the broker at %s (%s); reconnecting, the outbox keeps every event",
                        self.status().broker, reason)
        self._listener.link_down()

    def _connect_failed(self, reason: str) -> None:
        self._metrics.mqtt_connect_failures += 1
        if not self._failing:
            self._failing = True
            log.error("MQTT connect to %s failed: %s; retrying with backoff (repeats are only counted)",
                      self.status().broker, reason)
        else:
            log.debug("MQTT connect to %s failed again: %s", self.status().broker, reason)

    def _acked(self, mid: int) -> None:
        self._last_contact = self._clock.now()
        self._listener.acked(mid)

    def _received(self, message: Downlink) -> None:
        self._last_contact = self._clock.now()
        try:
            self.downlink.put_nowait(message)
        except asyncio.QueueFull:
            self._metrics.downlink_overflow += 1
            log.debug("downlink queue full; message %d left for redelivery", message.mid)
