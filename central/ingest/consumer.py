"""MQTT consumer (ingest layer, adapter): broker -> bounded queue -> store -> ack after commit.

paho's network thread only enqueues. One thread stores each message in the inbox (step one
of store-first, `central.ingest.processor`) and acknowledges it (manual PUBACK) only after
that commit, so a crash before the commit means the broker redelivers and nothing is lost;
the inbox's unique `message_id` makes the redelivery harmless. After each store it calls
`on_stored` (the inbox worker's `wake`), which applies the message. A message that cannot
be stored is kept as a dead letter and then acknowledged (`central.ingest.handler`), so it
cannot occupy a broker in-flight slot for good. A full queue is never a silent drop: the
message stays unacknowledged, is counted, and the session is re-established once the queue
has drained so the broker redelivers it.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import paho.mqtt.client as mqtt

from central.clock import Clock, SystemClock
from central.ingest.handler import DeadLetterSink, MessageHandler, MessageStore
from central.metrics import Metrics
from central.mqtt import connect_async, new_client
from central.settings import CentralSettings
from protocols.mqtt.topics import UPLINK_KINDS, subscription

log = logging.getLogger(__name__)

__all__ = ["DeadLetterSink", "MessageStore", "MqttConsumer"]


@dataclass(frozen=True, slots=True)
class _Item:
    topic: str
    payload: bytes
    mid: int
    qos: int
    generation: int  # connection the message came on; a PUBACK is only valid on that one


class MqttConsumer:
    def __init__(
        self, *, settings: CentralSettings, store: MessageStore, dead_letters: DeadLetterSink,
        metrics: Metrics, clock: Clock | None = None, on_stored: Callable[[], None] | None = None,
        enqueue_timeout_s: float = 1.0, stop_drain_s: float = 5.0, retry_delay_s: float = 0.1,
    ) -> None:  # fmt: skip
        self._settings = settings
        self._metrics = metrics
        self._enqueue_timeout_s = enqueue_timeout_s
        self._stop_drain_s = stop_drain_s
        self._on_stored = on_stored
        self._queue: queue.Queue[_Item] = queue.Queue(maxsize=settings.ingest_queue_size)
        self._stopping = threading.Event()
        self._connected = threading.Event()
        self._lock = threading.Lock()
        self._generation = 0
        self._overflowed = False
        self._handler = MessageHandler(
            store=store, dead_letters=dead_letters, metrics=metrics, clock=clock or SystemClock(),
            stopping=self._stopping, max_attempts=settings.ingest_max_attempts, retry_delay_s=retry_delay_s,
        )
        self._client = new_client(settings, client_id=settings.mqtt_client_id, persistent=True, manual_ack=True)
        self._client.on_connect = self._on_connect
        self._client.on_disconnect = self._on_disconnect
        self._client.on_message = self._on_message
        self._client.on_subscribe = self._on_subscribe
        self._worker = threading.Thread(target=self._work, name="central-ingest", daemon=True)

    # --- lifecycle ---
    def start(self) -> None:
        self._connect()
        self._worker.start()

    def stop(self) -> None:
        """Stop taking messages, finish the queued ones (bounded), then disconnect."""
        self._stopping.set()
        self._worker.join(self._stop_drain_s)
        self._client.disconnect()
        self._client.loop_stop()

    @property
    def connected(self) -> bool:
        """Connected and subscribed."""
        return self._connected.is_set()

    def queue_depth(self) -> int:
        return self._queue.qsize()

    def wait_connected(self, timeout: float) -> bool:
        return self._connected.wait(timeout)

    def _connect(self) -> None:
        connect_async(self._client, self._settings, persistent=True,
                      receive_maximum=self._settings.ingest_queue_size)
        self._client.loop_start()

    # --- paho thread ---
    def _on_connect(self, client: mqtt.Client, _userdata: Any, flags: Any, reason: Any, _props: Any) -> None:
        if reason.is_failure:
            log.error("MQTT broker refused the ingest connection: %s", reason)
            return
        with self._lock:
            self._generation += 1
        group = self._settings.mqtt_share_group
        client.subscribe([(subscription(kind, group), 1) for kind in UPLINK_KINDS])
        log.info("ingest connected to %s (session present: %s)", self._settings.mqtt_url, flags.session_present)

    def _on_subscribe(self, _client: mqtt.Client, _userdata: Any, _mid: int, reasons: list[Any], _props: Any) -> None:
        failed = [str(r) for r in reasons if r.is_failure]
        if failed:
            # e.g. a broker without shared subscriptions (amqtt) refusing $share/...
            log.error("the broker refused the ingest subscriptions: %s", ", ".join(failed))
            return
        self._connected.set()  # connected and subscribed: ready to receive

    def _on_disconnect(self, _client: mqtt.Client, _userdata: Any, _flags: Any, reason: Any, _props: Any) -> None:
        if self._connected.is_set() and not self._stopping.is_set():
            log.warning("ingest lost the MQTT connection (%s); reconnecting", reason)
        self._connected.clear()

    def _on_message(self, _client: mqtt.Client, _userdata: Any, message: mqtt.MQTTMessage) -> None:
        if self._stopping.is_set():
            return  # not acknowledged: the broker redelivers it to the next session
        item = _Item(message.topic, bytes(message.payload), message.mid, message.qos, self._generation)
        try:
            self._queue.put(item, timeout=self._enqueue_timeout_s)  # blocking here is back-pressure
        except queue.Full:
            self._metrics.inc("storeguard_central_ingest_overflow_total")
            with self._lock:
                first, self._overflowed = not self._overflowed, True
            if first:
                log.warning("ingest queue full (%d): leaving messages unacknowledged for redelivery",
                            self._settings.ingest_queue_size)

    # --- worker thread ---
    def _work(self) -> None:
        while True:
            try:
                item = self._queue.get(timeout=0.2)
            except queue.Empty:
                if self._stopping.is_set():
                    return
                if self._overflowed:
                    self._reconnect_for_redelivery()
                continue
            if self._handler.handle(item.topic, item.payload):
                self._ack(item)
                if self._on_stored is not None:
                    self._on_stored()

    def _ack(self, item: _Item) -> None:
        if item.qos == 0 or item.generation != self._generation:
            return  # a message from an earlier connection is redelivered on this one and acked then
        self._client.ack(item.mid, item.qos)

    def _reconnect_for_redelivery(self) -> None:
        with self._lock:
            self._overflowed = False
        log.info("ingest queue drained: reconnecting so the broker redelivers unacknowledged messages")
        self._client.disconnect()
        self._client.loop_stop()
        if not self._stopping.is_set():
            self._connect()
