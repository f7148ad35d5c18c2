"""The inbox worker (ingest layer, no MQTT): applies stored messages, in every central process.

A thread that drains the inbox through `Ingestor.process_batch` (up to `batch_size`
messages a transaction) until nothing is due. It
runs at once when this process stored a message (`wake`, called by the MQTT consumer after
each commit) and otherwise every `poll_s`, which picks up what other workers stored and
could not apply (they crashed, or were stopped), failed messages whose backoff is over,
and on start everything left pending. A transient database error backs off (doubling, up
to `max_backoff_s`), logged once and counted; the row stays pending for whoever is next.
"""

from __future__ import annotations

import logging
import threading

from central.ingest.handler import FailureKind, classify
from central.ingest.processor import Ingestor
from central.metrics import Metrics

log = logging.getLogger(__name__)


class InboxWorker:
    def __init__(self, *, ingestor: Ingestor, metrics: Metrics, poll_s: float = 0.5, retry_delay_s: float = 0.1,
                 max_backoff_s: float = 5.0, stop_timeout_s: float = 10.0, batch_size: int = 20,
                 batch_budget_s: float = 0.1) -> None:
        self._ingestor = ingestor
        self._batch_size = batch_size
        self._batch_budget_s = batch_budget_s
        self._metrics = metrics
        self._poll_s = poll_s
        self._retry_delay_s = retry_delay_s
        self._max_backoff_s = max_backoff_s
        self._stop_timeout_s = stop_timeout_s
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._db_failing = False
        self._thread = threading.Thread(target=self._run, name="central-inbox", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def wake(self) -> None:
        """A message was stored: apply it now rather than at the next poll."""
        self._wake.set()

    def stop(self) -> None:
        """Finish the message being applied, then stop; pending rows wait for the next start."""
        self._stopping.set()
        self._wake.set()
        self._thread.join(self._stop_timeout_s)

    def _run(self) -> None:
        delay = self._retry_delay_s
        while not self._stopping.is_set():
            try:
                self._drain()
            except Exception as exc:  # noqa: BLE001 - transient: back off; anything else is a bug, logged
                if classify(exc) is FailureKind.TRANSIENT:
                    self._metrics.inc("storeguard_central_db_retries_total")
                    log.log(logging.DEBUG if self._db_failing else logging.ERROR,
                            "inbox: database unavailable, retrying: %s", exc)
                    self._db_failing = True
                    self._stopping.wait(delay)
                    delay = min(delay * 2, self._max_backoff_s)
                    continue
                log.exception("inbox: claiming a stored message failed; retrying at the next poll")
            else:
                if self._db_failing:
                    log.info("inbox: database available again")
                    self._db_failing = False
                delay = self._retry_delay_s
            self._wake.wait(self._poll_s)
            self._wake.clear()

    def _drain(self) -> None:
        while not self._stopping.is_set():
            self._wake.clear()  # what is stored from here on is found by this pass or wakes the next
            if not self._ingestor.process_batch(self._batch_size, self._batch_budget_s):
                return
