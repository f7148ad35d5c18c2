"""The fault state machine on its own: delays, the clearing phase and held states."""

from __future__ import annotations

from edge.faults import FaultMachine, Phase, Transition


def test_delay_must_elapse_while_beyond() -> None:
    m = FaultMachine(delay_s=60)
    assert m.observe(0, beyond=True, recovered=False) is None
    assert m.phase is Phase.PENDING
    assert m.observe(59.9, beyond=True, recovered=False) is None
    assert m.observe(60, beyond=True, recovered=False) is Transition.RAISED
    assert m.phase is Phase.ACTIVE and m.is_active


def test_a_short_excursion_returns_to_normal_and_restarts_the_delay() -> None:
    m = FaultMachine(delay_s=60)
    m.observe(0, beyond=True, recovered=False)
    assert m.observe(30, beyond=False, recovered=False) is None
    assert m.phase is Phase.NORMAL
    m.observe(40, beyond=True, recovered=False)
    assert m.observe(99, beyond=True, recovered=False) is None
    assert m.observe(100, beyond=True, recovered=False) is Transition.RAISED


def test_zero_delays_raise_and_clear_at_once() -> None:
    m = FaultMachine()
    assert m.observe(0, beyond=True, recovered=False) is Transition.RAISED
    assert m.observe(1, beyond=False, recovered=True) is Transition.CLEARED
    assert m.phase is Phase.NORMAL


def test_clearing_needs_clear_delay_and_falls_back_to_active() -> None:
    m = FaultMachine(clear_delay_s=30)
    m.observe(0, beyond=True, recovered=False)
    assert m.observe(10, beyond=False, recovered=True) is None
    assert m.phase is Phase.CLEARING and m.is_active
    assert m.observe(20, beyond=False, recovered=False) is None  # in the hysteresis band
    assert m.phase is Phase.ACTIVE
    m.observe(50, beyond=False, recovered=True)
    assert m.observe(79, beyond=False, recovered=True) is None
    assert m.observe(80, beyond=False, recovered=True) is Transition.CLEARED


def test_between_clear_level_and_limit_an_active_fault_stays_active() -> None:
    m = FaultMachine()
    m.observe(0, beyond=True, recovered=False)
    for t in range(1, 100):
        assert m.observe(t, beyond=False, recovered=False) is None
    assert m.phase is Phase.ACTIVE


def test_a_restored_machine_is_active_and_only_clears() -> None:
    m = FaultMachine(delay_s=60, clear_delay_s=30)
    m.restore(active_since=-3600)
    assert m.phase is Phase.ACTIVE and m.is_active and m.active_since == -3600
    assert m.observe(0, beyond=True, recovered=False) is None  # still beyond: no second raise
    assert m.observe(100, beyond=False, recovered=True) is None
    assert m.observe(130, beyond=False, recovered=True) is Transition.CLEARED
