"""One store message in, one committed transaction out (ingest layer, no MQTT here).

`Ingestor.process(topic, payload)` is what the MQTT consumer calls for each message and what
tests call directly: parse against contract v1, apply in one transaction, count the outcome.
Database errors propagate so the caller can retry and must not acknowledge.
`Ingestor.dead_letter(message)` stores a message the caller gave up on, in a transaction of
its own.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass

from central.clock import Clock
from central.db import Database
from central.ingest import dead_letters
from central.ingest.dead_letters import PoisonMessage
from central.ingest.flows import Applied, Outcome, apply_message
from central.metrics import Metrics
from device_profiles import ProfileRegistry
from protocols.mqtt.messages import (
    ConfigAck,
    ContractError,
    FaultEvent,
    StoreHealth,
    TelemetryBatch,
    parse_message,
)

log = logging.getLogger(__name__)
CONSUMED = (FaultEvent, TelemetryBatch, StoreHealth, ConfigAck)


@dataclass(frozen=True, slots=True)
class Result:
    outcome: Outcome
    kind: str = ""
    reason: str | None = None  # the ContractError reason of a rejection
    created_ticket_id: int | None = None


class Ingestor:
    def __init__(self, *, database: Database, profiles: ProfileRegistry, metrics: Metrics, clock: Clock,
                 haccp_interval_s: int = 900) -> None:
        self._database = database
        self._haccp_interval_s = haccp_interval_s  # settings.haccp_interval_s
        self._profiles = profiles
        self._metrics = metrics
        self._clock = clock
        self._logged_reasons: set[str] = set()
        self._lock = threading.Lock()

    def process(self, topic: str, payload: bytes) -> Result:
        try:
            message = parse_message(topic, payload)
            if not isinstance(message, CONSUMED):
                raise ContractError("unexpected_kind", f"central does not consume {type(message).__name__}")
        except ContractError as exc:
            self._rejected(topic, exc)
            return Result(Outcome.REJECTED, reason=exc.reason)
        with self._database.session() as session, session.begin():
            applied: Applied = apply_message(session=session, message=message, now=self._clock.now(),
                                             profiles=self._profiles, haccp_interval_s=self._haccp_interval_s)
        # committed: only now does it count
        counter = ("storeguard_central_messages_accepted_total" if applied.outcome is Outcome.ACCEPTED
                   else "storeguard_central_messages_duplicate_total")
        self._metrics.inc(counter, kind=applied.kind)
        if not applied.in_order:
            self._metrics.inc("storeguard_central_fault_events_out_of_order_total")
        if applied.created_ticket_id is not None and applied.ticket_class is not None:
            self._metrics.inc("storeguard_central_tickets_created_total", ticket_class=applied.ticket_class.value)
        return Result(applied.outcome, applied.kind, created_ticket_id=applied.created_ticket_id)

    def dead_letter(self, message: PoisonMessage) -> None:
        with self._database.session() as session, session.begin():
            dead_letters.record(session=session, message=message)

    def _rejected(self, topic: str, exc: ContractError) -> None:
        self._metrics.inc("storeguard_central_messages_rejected_total", reason=exc.reason)
        with self._lock:
            first = exc.reason not in self._logged_reasons
            self._logged_reasons.add(exc.reason)
        # log the first of each reason; the rest are a metric, not a log flood
        log.log(logging.WARNING if first else logging.DEBUG, "rejected a message on %s: %s", topic, exc)
