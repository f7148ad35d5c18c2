"""The outbox sender (gateway layer): outbox rows -> MQTT publishes, rows deleted on PUBACK.

While the link is up it keeps at most `window` rows in flight, in priority then id order,
and maps each MQTT message id to its row. A PUBACK deletes exactly that row. When the link
drops, the map is forgotten and everything still in the outbox is sent again after the
reconnect: duplicates are possible (central is idempotent on message_id), losses are not.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Protocol

from gateway.errors import LinkBusy, LinkError
from gateway.metrics import GatewayMetrics
from gateway.outbox import Outbox, OutboxKind

log = logging.getLogger(__name__)

IDLE_RECHECK_S = 1.0  # a missed wake-up costs at most this long


class Publisher(Protocol):
    """The two things the sender needs from an MQTT link."""

    @property
    def connected(self) -> bool: ...

    def publish(self, topic: str, payload: bytes, qos: int, retain: bool) -> int:
        """Hand a message to the client; returns its message id. Raises LinkError."""
        ...


class OutboxSender:
    def __init__(self, outbox: Outbox, metrics: GatewayMetrics, *, window: int = 20) -> None:
        self._outbox = outbox
        self._metrics = metrics
        self._window = window
        self._in_flight: dict[int, tuple[int, OutboxKind]] = {}  # mid -> (row id, kind)
        self._wake = asyncio.Event()
        self._warned_refused = False

    @property
    def in_flight(self) -> int:
        return len(self._in_flight)

    def wake(self) -> None:
        """Something changed (a new row, an ack, a connect): look at the outbox again."""
        self._wake.set()

    # -- link events (called on the event loop) -----------------------------------------------
    def link_up(self) -> None:
        self._in_flight.clear()
        self.wake()

    def link_down(self) -> None:
        self._in_flight.clear()

    def acked(self, mid: int) -> None:
        entry = self._in_flight.pop(mid, None)
        if entry is None:
            return  # a resend by the MQTT client itself, or from before a reconnect
        row_id, kind = entry
        self._outbox.ack(row_id)
        self._metrics.acked[kind.value] += 1
        self.wake()

    # -- sending ----------------------------------------------------------------------------
    async def run(self, publisher: Publisher) -> None:
        while True:
            self.fill(publisher)
            try:  # asyncio.timeout, not wait_for: 3.11's wait_for can swallow a cancellation
                async with asyncio.timeout(IDLE_RECHECK_S):
                    await self._wake.wait()
            except TimeoutError:
                pass
            self._wake.clear()

    def fill(self, publisher: Publisher) -> int:
        """Publish rows until the window is full; returns how many were handed over."""
        if not publisher.connected:
            return 0
        free = self._window - len(self._in_flight)
        rows = self._outbox.pending(free, exclude={row_id for row_id, _ in self._in_flight.values()})
        sent = 0
        for row in rows:
            try:
                mid = publisher.publish(row.topic, row.payload, row.qos, row.retain)
            except LinkBusy:
                self._metrics.publish_refused += 1
                if not self._warned_refused:
                    self._warned_refused = True
                    log.warning("MQTT client queue full; holding outbox rows until acknowledgements arrive")
                break
            except LinkError as exc:
                log.debug("publish refused: %s", exc)
                break
            self._in_flight[mid] = (row.id, row.kind)
            self._metrics.published[row.kind.value] += 1
            sent += 1
        return sent
