"""Ticket status publisher (outbox drain, adapter): outbound_messages -> MQTT QoS 1 -> sent on PUBACK.

Ticket statuses and desired store configs (the latter retained, so a store that was offline
gets the newest when it subscribes again).

Rows are handed to paho once per process and marked sent only when the broker's PUBACK
arrives. paho keeps unacknowledged publishes across reconnects and sends them again; rows
left pending by a crash are published again at the next start. A repeat is harmless: the
store keeps the highest `version` per ticket and the message_id is unchanged.
"""

from __future__ import annotations

import logging
import queue
import threading
from typing import Any

import paho.mqtt.client as mqtt
from sqlalchemy.exc import SQLAlchemyError

from central.clock import Clock
from central.db import Database
from central.metrics import Metrics
from central.mqtt import connect_async, new_client
from central.outbox import service as outbox
from central.settings import CentralSettings
from central.store_config import service as store_config
from protocols.mqtt.topics import is_retained

log = logging.getLogger(__name__)


class StatusPublisher:
    def __init__(self, *, settings: CentralSettings, database: Database, metrics: Metrics, clock: Clock) -> None:
        self._settings = settings
        self._database = database
        self._metrics = metrics
        self._clock = clock
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._connected = threading.Event()
        self._republish = threading.Event()  # set on every connect: re-queue configs stores lack
        self._acks: queue.SimpleQueue[int] = queue.SimpleQueue()  # mids from paho's thread
        self._inflight: dict[int, int] = {}  # mid -> outbox row id; publisher thread only
        self._acked_ids: list[int] = []  # acknowledged, not yet marked in the database
        self._db_failing = False
        self._client = new_client(settings, client_id=f"{settings.mqtt_client_id}-pub", persistent=False)
        self._client.on_connect = self._on_connect
        self._client.on_disconnect = self._on_disconnect
        self._client.on_publish = self._on_publish
        self._thread = threading.Thread(target=self._run, name="central-publisher", daemon=True)

    def start(self) -> None:
        connect_async(self._client, self._settings, persistent=False)
        self._client.loop_start()
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        self._wake.set()
        self._thread.join(10)
        self._client.disconnect()
        self._client.loop_stop()

    def wake(self) -> None:
        """Called after a commit that wrote to the outbox."""
        self._wake.set()

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    @property
    def inflight(self) -> int:
        return len(self._inflight)

    # --- paho thread ---
    def _on_connect(self, _client: mqtt.Client, _userdata: Any, _flags: Any, reason: Any, _props: Any) -> None:
        if reason.is_failure:
            log.error("MQTT broker refused the publisher connection: %s", reason)
            return
        self._connected.set()
        self._republish.set()
        self._wake.set()

    def _on_disconnect(self, _client: mqtt.Client, _userdata: Any, _flags: Any, _reason: Any, _props: Any) -> None:
        self._connected.clear()

    def _on_publish(self, _client: mqtt.Client, _userdata: Any, mid: int, _reason: Any, _props: Any) -> None:
        self._acks.put(mid)
        self._wake.set()

    # --- publisher thread ---
    def _run(self) -> None:
        while not self._stopping.is_set():
            self._wake.wait(self._settings.publisher_poll_s)
            self._wake.clear()
            try:
                self._settle_acks()
                if self._connected.is_set():
                    self._republish_configs()
                    self._publish_pending()
            except SQLAlchemyError as exc:
                log.log(logging.DEBUG if self._db_failing else logging.ERROR, "publisher database error: %s", exc)
                self._db_failing = True
                self._stopping.wait(1.0)
                continue
            self._db_failing = False
        try:
            self._settle_acks()  # record what the broker confirmed before we stop
        except SQLAlchemyError as exc:
            log.warning("could not record the last acknowledgements: %s", exc)

    def _settle_acks(self) -> None:
        while True:
            try:
                mid = self._acks.get_nowait()
            except queue.Empty:
                break
            row_id = self._inflight.pop(mid, None)
            if row_id is not None:
                self._acked_ids.append(row_id)
        if not self._acked_ids:
            return
        with self._database.session() as session, session.begin():
            outbox.mark_sent(session=session, ids=self._acked_ids, now=self._clock.now())
        self._metrics.inc("storeguard_central_status_published_total", len(self._acked_ids))
        self._acked_ids.clear()

    def _republish_configs(self) -> None:
        """After a (re)connect: the broker may have lost its retained configs (no persistence)."""
        if not self._republish.is_set():
            return
        with self._database.session() as session, session.begin():
            queued = store_config.republish_unsynced(session=session, now=self._clock.now())
        self._republish.clear()  # only once the rows are committed
        if queued:
            log.info("re-queued the desired config of %d store(s) that do not run it yet", queued)

    def _publish_pending(self) -> None:
        room = self._settings.publisher_max_inflight - len(self._inflight)
        if room <= 0:
            return
        skip = set(self._inflight.values()) | set(self._acked_ids)
        with self._database.session() as session, session.begin():
            rows = [(r.id, r.topic, r.payload) for r in outbox.pending(session=session, limit=room, exclude_ids=skip)]
        for row_id, topic, payload in rows:
            info = self._client.publish(topic, payload, qos=1, retain=is_retained(topic))  # config: retained
            if info.rc not in (mqtt.MQTT_ERR_SUCCESS, mqtt.MQTT_ERR_NO_CONN):  # NO_CONN: paho sends it on reconnect
                log.warning("publishing ticket status failed (%s); will retry", mqtt.error_string(info.rc))
                break
            self._inflight[info.mid] = row_id
