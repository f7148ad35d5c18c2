"""Automatic dispatch choice (tickets domain, pure): skill match first, then the lightest load.

Takes plain candidates, returns the choice and a sentence explaining it, so the rule is
unit-tested without a database and every assignment is explained on the ticket.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Candidate:
    technician_id: int
    display_name: str
    skills: frozenset[str]
    active: bool
    open_tickets: int  # tickets assigned to them and not yet resolved


@dataclass(frozen=True, slots=True)
class Choice:
    technician: Candidate | None
    reason: str


def choose_technician(
    candidates: Iterable[Candidate], *, skill: str | None, exclude: frozenset[int] = frozenset()
) -> Choice:
    """The active technician with `skill` and the fewest open tickets (ties: lowest id)."""
    if skill is None:
        return Choice(None, "not assigned: the device model is unknown, so there is no skill to match")
    qualified = [c for c in candidates if c.active and skill in c.skills]
    eligible = [c for c in qualified if c.technician_id not in exclude]
    if not eligible:
        why = f"no active technician has the skill {skill!r}"
        if qualified:
            why = f"every active technician with the skill {skill!r} has declined this ticket"
        return Choice(None, f"not assigned: {why}")
    best = min(eligible, key=lambda c: (c.open_tickets, c.technician_id))
    return Choice(
        best,
        f"auto-assigned to {best.display_name}: skill {skill!r}, {best.open_tickets} open tickets, "
        f"the fewest of {len(eligible)} eligible",
    )
