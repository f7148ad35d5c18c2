"""The fault state machine (edge layer): normal -> pending -> active -> clearing -> normal. Pure.

One machine per (device, fault code). It is fed observations with the time they were made
(from the injected clock) and answers with the transition to report, if any:

* normal   + beyond the limit            -> pending (or active at once when delay is 0)
* pending  + still beyond for ``delay_s`` -> active   => "raised"
* pending  + no longer beyond            -> normal   (a short excursion never reports)
* active   + recovered                   -> clearing (or normal at once when clear delay is 0)
* clearing + recovered for ``clear_delay_s`` -> normal => "cleared"
* clearing + not recovered               -> active   (no report: the fault never went away)

An unknown observation (stale data) is simply not fed: the machine holds its state.

``restore`` puts a machine straight into ACTIVE, reporting nothing: the fault was raised
before a restart and is still open downstream, so only a clear may follow.
``resume_pending`` resumes a pending delay that was running before a restart. The delays
may be changed on a live machine (a reconfiguration): the next observation uses them.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Phase(StrEnum):
    NORMAL = "normal"
    PENDING = "pending"
    ACTIVE = "active"
    CLEARING = "clearing"


class Transition(StrEnum):
    RAISED = "raised"
    CLEARED = "cleared"


@dataclass(slots=True)
class FaultMachine:
    delay_s: float = 0.0
    clear_delay_s: float = 0.0
    phase: Phase = Phase.NORMAL
    pending_since: float | None = None  # when the condition was first seen (monotonic seconds)
    active_since: float | None = None
    clearing_since: float | None = None

    @property
    def is_active(self) -> bool:
        """Raised and not yet cleared (active or clearing)."""
        return self.phase in (Phase.ACTIVE, Phase.CLEARING)

    def restore(self, active_since: float) -> None:
        """Resume a fault raised before a restart (``active_since`` on this run's monotonic clock)."""
        self.phase = Phase.ACTIVE
        self.pending_since = self.active_since = active_since
        self.clearing_since = None

    def resume_pending(self, since: float) -> None:
        """Resume a pending condition first seen at ``since`` (before a restart); only from NORMAL."""
        if self.phase is Phase.NORMAL:
            self.phase, self.pending_since = Phase.PENDING, since

    def observe(self, now: float, *, beyond: bool, recovered: bool) -> Transition | None:
        """Feed one observation. ``beyond``: the fault condition holds; ``recovered``: the clear
        condition holds (with hysteresis both can be false: between the clear level and the limit)."""
        if self.phase is Phase.NORMAL:
            if beyond:
                self.phase, self.pending_since = Phase.PENDING, now
                return self._maybe_raise(now)
            return None
        if self.phase is Phase.PENDING:
            if beyond:
                return self._maybe_raise(now)
            self.phase, self.pending_since = Phase.NORMAL, None
            return None
        if self.phase is Phase.ACTIVE:
            if recovered:
                self.phase, self.clearing_since = Phase.CLEARING, now
                return self._maybe_clear(now)
            return None
        if recovered:
            return self._maybe_clear(now)
        self.phase, self.clearing_since = Phase.ACTIVE, None
        return None

    def _maybe_raise(self, now: float) -> Transition | None:
        assert self.pending_since is not None
        if now - self.pending_since >= self.delay_s:
            self.phase, self.active_since = Phase.ACTIVE, now
            return Transition.RAISED
        return None

    def _maybe_clear(self, now: float) -> Transition | None:
        assert self.clearing_since is not None
        if now - self.clearing_since >= self.clear_delay_s:
            self.phase = Phase.NORMAL
            return Transition.CLEARED
        return None
