"""A store-side MQTT client for central's broker tests: publishes uplink, collects ticket status."""

from __future__ import annotations

import threading
import uuid
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from protocols.mqtt.messages import Message, TicketStatus
from protocols.mqtt.topics import TopicKind, topic
from tests.integration.central.support import wait_until


class StoreSide:
    """Plays a store gateway: a persistent session subscribed to its ticket-status topic."""

    def __init__(self, port: int, store_id: str) -> None:
        self.store_id = store_id
        self.statuses: list[TicketStatus] = []
        self._lock = threading.Lock()
        self._subscribed = threading.Event()
        self.client = mqtt.Client(callback_api_version=CallbackAPIVersion.VERSION2,
                                  client_id=f"test-store-{store_id}-{uuid.uuid4().hex[:6]}", clean_session=False)
        self.client.reconnect_delay_set(1, 1)
        self.client.on_connect = self._on_connect
        self.client.on_subscribe = lambda *_args: self._subscribed.set()
        self.client.on_message = self._on_message
        self.client.connect("127.0.0.1", port, keepalive=10)
        self.client.loop_start()
        assert self._subscribed.wait(10), "store side did not subscribe"

    def _on_connect(self, client: mqtt.Client, *_args: Any) -> None:
        client.subscribe(topic(self.store_id, TopicKind.TICKET_STATUS), qos=1)

    def _on_message(self, _client: mqtt.Client, _userdata: Any, message: mqtt.MQTTMessage) -> None:
        status = TicketStatus.model_validate_json(message.payload)
        with self._lock:
            self.statuses.append(status)

    def publish(self, message: Message, kind: TopicKind = TopicKind.FAULT) -> None:
        self.publish_raw(topic(message.store_id, kind), message.to_bytes())

    def publish_raw(self, topic_name: str, payload: bytes) -> None:
        info = self.client.publish(topic_name, payload, qos=1)
        info.wait_for_publish(10)

    def wait_for_status(self, status: str, timeout: float = 15.0) -> TicketStatus:
        def found() -> TicketStatus | None:
            with self._lock:
                return next((s for s in self.statuses if s.status.value == status), None)

        return wait_until(found, timeout)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()
