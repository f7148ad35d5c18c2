"""Rule state kept across restarts (gateway layer): the edge's pending timers, baselines and
suppression windows, one JSON document per device in the store database.

Saved every ``SAVE_INTERVAL_S`` and at shutdown, handed back to the next edge at start. Times
in it are wall-clock stamps (the edge converts), so a restart of the process is no problem.
A document that does not parse is dropped with a warning: the rules then start fresh.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping

from edge.clock import Clock
from gateway.storage import StoreDatabase

log = logging.getLogger(__name__)

SAVE_INTERVAL_S = 60.0
RuleState = dict[str, dict[str, object]]  # device id -> the edge's state document


class RuleStateStore:
    def __init__(self, db: StoreDatabase, clock: Clock) -> None:
        self._db = db
        self._clock = clock

    def load(self) -> RuleState:
        states: RuleState = {}
        for device_id, text in self._db.execute("SELECT device_id, state FROM rule_state ORDER BY device_id"):
            try:
                state = json.loads(text)
            except ValueError as exc:
                log.warning("saved rule state of device %s does not parse (%s); its rules start fresh", device_id, exc)
                continue
            if isinstance(state, dict):
                states[device_id] = state
        return states

    def save(self, states: Mapping[str, Mapping[str, object]]) -> None:
        """Replace every saved document by ``states`` (devices no longer configured are dropped)."""
        saved_at = self._clock.now().timestamp()
        rows = [(device_id, json.dumps(state, separators=(",", ":")), saved_at) for device_id, state in states.items()]
        with self._db.transaction():
            self._db.execute("DELETE FROM rule_state")
            for row in rows:
                self._db.execute("INSERT INTO rule_state (device_id, state, saved_at) VALUES (?, ?, ?)", row)

    def saver(self, source: Callable[[], Mapping[str, Mapping[str, object]]]) -> Callable[[], None]:
        """A job for the save timer and for shutdown: the edge's state, saved."""
        return lambda: self.save(source())
