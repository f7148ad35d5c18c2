"""The notify loop (notify layer, adapter): one thread per central worker delivering notifications.

Every worker may run it. Each pass claims a small batch of due rows (leased, see
`central.notify.service`), delivers them one by one outside any transaction, records a
failure in a short transaction of its own and the batch's deliveries together in one (a
crash before that delivers them again: delivery is at least once). It sleeps `interval_s` between passes;
`wake()` (called after a commit that enqueued a notification) makes it look at once.

A failing channel is logged once per reason (WARNING while retrying, ERROR when a row is
given up), repeats at DEBUG; the first success afterwards is logged at INFO.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta


from central.clock import Clock
from central.periodic import PeriodicWorker
from central.db import Database
from central.notify import service
from central.notify.channels import DeliveryError, Notifier
from central.notify.models import Delivery, State

log = logging.getLogger(__name__)


@dataclass
class PassResult:
    delivered: int = 0
    retried: int = 0
    failed: int = 0  # given up: state failed
    released: int = 0  # claimed, left for the lease to end (the pass ran past its lease)
    delivered_ids: list[int] = field(default_factory=list)


class NotifyLoop(PeriodicWorker):
    def __init__(self, *, database: Database, notifiers: Mapping[str, Notifier], clock: Clock,
                 interval_s: float = 1.0, batch_size: int = 10, lease_s: float = 300.0, max_batches: int = 20) -> None:
        super().__init__(name="central-notify", what="notify loop", interval_s=interval_s)
        self._database = database
        self._notifiers = dict(notifiers)
        self._clock = clock
        self._batch_size = batch_size
        self._lease_s = lease_s
        self._max_batches = max_batches
        self._logged: dict[str, set[tuple[bool, str]]] = {}  # channel -> (gave up, reason) already logged

    def stop(self, timeout: float | None = None) -> None:
        super().stop(timeout)
        for notifier in self._notifiers.values():
            notifier.close()

    def run_once(self) -> PassResult:
        """Deliver what is due now, up to `max_batches` batches."""
        result = PassResult()
        for _ in range(self._max_batches):
            claimed_at = self._clock.now()
            with self._database.session() as session, session.begin():
                batch = service.claim_due(session=session, now=claimed_at, limit=self._batch_size,
                                          channels=list(self._notifiers), lease_s=self._lease_s)
            # stop short of the lease: past it another worker may claim the rest and deliver it too
            deadline = claimed_at + timedelta(seconds=self._lease_s * 0.8)
            delivered: list[Delivery] = []
            try:
                for delivery in batch:
                    if self._stopping.is_set() or self._clock.now() >= deadline:
                        result.released += 1  # due again when its lease ends
                        continue
                    if self._deliver(delivery, result):
                        delivered.append(delivery)
            finally:  # one transaction for the batch's deliveries (a crash before it: delivered again)
                self._record_delivered(delivered, result)
            if len(batch) < self._batch_size or self._stopping.is_set():
                break
        return result

    def _deliver(self, delivery: Delivery, result: PassResult) -> bool:
        try:
            self._notifiers[delivery.channel].deliver(delivery)
        except Exception as exc:  # noqa: BLE001 - a channel bug is retried and counted like a refusal
            reason = exc.reason if isinstance(exc, DeliveryError) else f"error:{type(exc).__qualname__}"
            self._failed(delivery, reason, f"{type(exc).__qualname__}: {exc}", result)
            return False
        if self._logged.pop(delivery.channel, None):
            log.info("notify: the %s channel delivers again", delivery.channel)
        return True

    def _record_delivered(self, delivered: list[Delivery], result: PassResult) -> None:
        if not delivered:
            return
        with self._database.session() as session, session.begin():
            service.mark_delivered(session=session, notification_ids=[d.id for d in delivered],
                                   now=self._clock.now())
        result.delivered += len(delivered)
        result.delivered_ids.extend(d.id for d in delivered)

    def _failed(self, delivery: Delivery, reason: str, error: str, result: PassResult) -> None:
        with self._database.session() as session, session.begin():
            failure = service.record_failure(session=session, notification_id=delivery.id, error=error,
                                             now=self._clock.now())
        if failure is None:
            return
        gave_up = failure.state is State.FAILED
        logged = self._logged.setdefault(delivery.channel, set())
        first = (gave_up, reason) not in logged
        logged.add((gave_up, reason))
        if gave_up:
            result.failed += 1
            log.log(logging.ERROR if first else logging.DEBUG,
                    "notify: gave up on notification %d (%s) via %s after %d attempts: %s",
                    delivery.id, delivery.kind, delivery.channel, failure.attempts, error)
        else:
            result.retried += 1
            log.log(logging.WARNING if first else logging.DEBUG,
                    "notify: the %s channel failed (%s), retrying notification %d at %s: %s",
                    delivery.channel, reason, delivery.id, failure.retry_at, error)
