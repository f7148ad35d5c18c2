"""Automatic dispatch choice: skill first, then the fewest open tickets, ties by id."""

from __future__ import annotations

from central.tickets.assignment import Candidate, choose_technician


def tech(tid: int, skills: set[str], load: int = 0, active: bool = True) -> Candidate:
    return Candidate(technician_id=tid, display_name=f"Tech {tid}", skills=frozenset(skills), active=active,
                     open_tickets=load)


def test_picks_the_least_loaded_technician_with_the_skill() -> None:
    choice = choose_technician(
        [tech(1, {"refrigeration"}, load=3), tech(2, {"refrigeration"}, load=1), tech(3, {"self_checkout"})],
        skill="refrigeration",
    )
    assert choice.technician is not None and choice.technician.technician_id == 2
    assert "Tech 2" in choice.reason and "1 open" in choice.reason


def test_ties_go_to_the_lowest_id() -> None:
    choice = choose_technician([tech(7, {"refrigeration"}), tech(4, {"refrigeration"}), tech(9, {"refrigeration"})],
                               skill="refrigeration")
    assert choice.technician is not None and choice.technician.technician_id == 4


def test_inactive_and_unskilled_technicians_are_never_chosen() -> None:
    choice = choose_technician([tech(1, {"refrigeration"}, active=False), tech(2, {"electrical"})],
                               skill="refrigeration")
    assert choice.technician is None
    assert "no active technician has the skill 'refrigeration'" in choice.reason


def test_decliners_are_excluded_and_the_reason_says_so() -> None:
    candidates = [tech(1, {"self_checkout"}), tech(2, {"self_checkout"}, load=5)]
    choice = choose_technician(candidates, skill="self_checkout", exclude=frozenset({1}))
    assert choice.technician is not None and choice.technician.technician_id == 2
    nobody = choose_technician(candidates, skill="self_checkout", exclude=frozenset({1, 2}))
    assert nobody.technician is None and "declined" in nobody.reason


def test_unknown_device_model_means_no_skill() -> None:
    choice = choose_technician([tech(1, {"refrigeration"})], skill=None)
    assert choice.technician is None and "unknown" in choice.reason
