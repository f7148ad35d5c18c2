"""The timer loop (timers layer, adapter): one thread per central worker firing due timers.

Every worker may run it: on PostgreSQL the claim skips rows another worker holds, so a
timer fires once however many workers run. It sleeps until the earliest deadline (at most
`interval_s`), and `wake()` makes it look again at once (e.g. after scheduling a near one).
"""

from __future__ import annotations

import logging

from central.clock import Clock
from central.db import Database
from central.metrics import Metrics
from central.periodic import PeriodicWorker
from central.timers import service
from central.timers.service import TimerRegistry

log = logging.getLogger(__name__)


class TimerLoop(PeriodicWorker):
    def __init__(self, *, database: Database, registry: TimerRegistry, clock: Clock, metrics: Metrics,
                 interval_s: float = 1.0, batch_size: int = 200) -> None:
        super().__init__(name="central-timers", what="timer loop", interval_s=interval_s, stop_timeout_s=5.0)
        self._database = database
        self._registry = registry
        self._clock = clock
        self._metrics = metrics
        self._batch_size = batch_size

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
