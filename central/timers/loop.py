"""The timer loop (timers layer, adapter): one thread per central worker firing due timers.

Every worker may run it: on PostgreSQL the claim skips rows another worker holds, so a
timer fires once however many workers run. It sleeps until the earliest deadline (at most
`interval_s`), and `wake()` makes it look again at once (e.g. after scheduling a near one).
"""

from __future__ import annotations

import logging
import threading

from sqlalchemy.exc import OperationalError

from central.clock import Clock
from central.db import Database
from central.metrics import Metrics
from central.timers import service
from central.timers.service import TimerRegistry

log = logging.getLogger(__name__)


class TimerLoop:
    def __init__(self, *, database: Database, registry: TimerRegistry, clock: Clock, metrics: Metrics,
                 interval_s: float = 1.0, batch_size: int = 200) -> None:
        self._database = database
        self._registry = registry
        self._clock = clock
        self._metrics = metrics
        self._interval_s = interval_s
        self._batch_size = batch_size
        self._stopping = threading.Event()
        self._wake = threading.Event()
        self._thread = threading.Thread(target=self._run, name="central-timers", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stopping.set()
        self._wake.set()
        if self._thread.is_alive():
            self._thread.join(timeout)

    def wake(self) -> None:
        self._wake.set()

    def run_once(self) -> service.PassResult:
        result = service.run_pass(database=self._database, registry=self._registry, now=self._clock.now(),
                                  batch_size=self._batch_size)
        for kind, count in result.fired.items():
            self._metrics.inc("storeguard_central_timers_fired_total", count, kind=kind)
        if result.retried:
            self._metrics.inc("storeguard_central_timers_retried_total", result.retried)
        if result.parked:
            self._metrics.inc("storeguard_central_timers_parked_total", result.parked)
        return result

    def _run(self) -> None:
        failing = False
        while not self._stopping.is_set():
            try:
                self.run_once()
                if failing:
                    log.info("timer loop: database available again")
                failing = False
            except OperationalError as exc:
                if not failing:
                    log.error("timer loop: database unavailable, retrying: %s", exc)
                failing = True
            except Exception:  # noqa: BLE001 - the loop must survive a bug in one pass
                log.exception("timer loop: a pass failed; retrying")
            self._wake.wait(self._interval_s)
            self._wake.clear()
