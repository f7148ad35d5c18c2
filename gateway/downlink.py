"""Ticket status downlink (gateway layer): central -> store messages, validated and stored.

A bad message (not JSON, breaking the contract, for another store, on an unexpected topic)
is rejected and counted, never a crash; the first rejection of each reason is logged.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from gateway.errors import StorageError
from gateway.metrics import GatewayMetrics
from gateway.tickets import RecordOutcome, TicketBook
from protocols.mqtt.messages import ContractError, TicketStatus, parse_message
from protocols.mqtt.topics import TopicError, TopicKind, parse_topic

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class DownlinkResult:
    ack: bool  # acknowledge to the broker (False: leave it for redelivery)
    outcome: RecordOutcome | None = None
    rejected: str | None = None  # the reason, when rejected


class DownlinkHandler:
    def __init__(self, *, store_id: str, tickets: TicketBook, metrics: GatewayMetrics) -> None:
        self._store_id = store_id
        self._tickets = tickets
        self._metrics = metrics
        self._logged: set[str] = set()

    def handle(self, topic: str, payload: bytes) -> DownlinkResult:
        self._metrics.ticket_status_received += 1
        try:
            store_id, kind = parse_topic(topic)
        except TopicError as exc:
            return self._reject("bad_topic", str(exc))
        if store_id != self._store_id:
            return self._reject("wrong_store", f"message on {topic!r} is for store {store_id!r}")
        if kind is not TopicKind.TICKET_STATUS:
            return self._reject("unexpected_topic", f"the store does not consume {topic!r}")
        try:
            message = parse_message(topic, payload)
        except ContractError as exc:
            return self._reject(exc.reason, exc.detail)
        if not isinstance(message, TicketStatus):  # parse_message picks the model by the topic's kind
            return self._reject("unexpected_kind", f"{type(message).__name__} on {topic!r}")
        try:
            outcome = self._tickets.record(message)
        except StorageError:
            self._metrics.downlink_errors += 1
            log.exception("ticket status %s v%d could not be stored; left for redelivery",
                          message.ticket_id, message.version)
            return DownlinkResult(ack=False)
        self._metrics.ticket_status_outcomes[outcome.value] += 1
        log.info("ticket %s (#%d) is %s (v%d, %s)", message.ticket_number, message.ticket_id,
                 message.status.value, message.version, outcome.value)
        return DownlinkResult(ack=True, outcome=outcome)

    def _reject(self, reason: str, detail: str) -> DownlinkResult:
        self._metrics.ticket_status_rejected[reason] += 1
        if reason not in self._logged:
            self._logged.add(reason)
            log.warning("rejected a ticket status message (%s): %s; further %s rejections are only counted",
                        reason, detail, reason)
        else:
            log.debug("rejected a ticket status message (%s): %s", reason, detail)
        return DownlinkResult(ack=True, rejected=reason)
