"""Ticket policy tables: priority, skills, transitions and who may act."""

from __future__ import annotations

import itertools

import pytest

from central.auth.models import Role
from central.errors import InvalidTransitionError, PermissionDeniedError
from central.tickets.policy import (
    PRIORITY,
    TRANSITIONS,
    Action,
    authorize,
    next_status,
    priority_for,
    skill_for_kind,
)
from protocols.mqtt.messages import FaultClass, Severity, TicketClass
from protocols.mqtt.messages import TicketStatusValue as S


def test_every_fault_class_and_severity_has_a_priority_in_range() -> None:
    for fault_class, severity in itertools.product(FaultClass, Severity):
        assert 1 <= priority_for(fault_class, severity) <= 5
    assert len(PRIORITY) == len(FaultClass) * len(Severity)


@pytest.mark.parametrize(
    ("fault_class", "severity", "priority"),
    [
        (FaultClass.FOOD_SAFETY, Severity.CRITICAL, 1),
        (FaultClass.FOOD_SAFETY, Severity.MAJOR, 2),
        (FaultClass.SAFETY, Severity.CRITICAL, 1),
        (FaultClass.SAFETY, Severity.MAJOR, 2),
        (FaultClass.REVENUE, Severity.MAJOR, 3),
        (FaultClass.EQUIPMENT, Severity.MAJOR, 3),
        (FaultClass.REVENUE, Severity.MINOR, 4),
        (FaultClass.FOOD_SAFETY, Severity.MINOR, 4),
        (FaultClass.COMFORT, Severity.INFO, 5),
        (FaultClass.SAFETY, Severity.INFO, 5),
    ],
)
def test_priority_policy(fault_class: FaultClass, severity: Severity, priority: int) -> None:
    assert priority_for(fault_class, severity) == priority


def test_food_safety_and_safety_outrank_revenue_at_every_severity() -> None:
    for severity in Severity:
        assert priority_for(FaultClass.FOOD_SAFETY, severity) <= priority_for(FaultClass.REVENUE, severity)
        assert priority_for(FaultClass.SAFETY, severity) <= priority_for(FaultClass.REVENUE, severity)


def test_skill_for_profile_kind() -> None:
    assert skill_for_kind("refrigeration_controller") == "refrigeration"
    assert skill_for_kind("self_checkout_lane") == "self_checkout"
    assert skill_for_kind("printer") == "self_checkout"
    assert skill_for_kind("bill_validator") == "self_checkout"
    assert skill_for_kind("ups") == "electrical"
    assert skill_for_kind(None) is None
    assert skill_for_kind("toaster") is None


def test_repair_happy_path() -> None:
    path = [(Action.ASSIGN, S.ASSIGNED), (Action.ACCEPT, S.ACCEPTED), (Action.EN_ROUTE, S.EN_ROUTE),
            (Action.ARRIVE, S.ON_SITE), (Action.RESOLVE, S.RESOLVED), (Action.CLOSE, S.CLOSED)]
    status = S.NEW
    for action, expected in path:
        status = next_status(TicketClass.REPAIR, status, action)
        assert status is expected


def test_decline_returns_the_ticket_to_new() -> None:
    assert next_status(TicketClass.REPAIR, S.ASSIGNED, Action.DECLINE) is S.NEW
    assert next_status(TicketClass.REPAIR, S.ACCEPTED, Action.DECLINE) is S.NEW


@pytest.mark.parametrize("status", [S.NEW, S.ASSIGNED, S.ACCEPTED, S.EN_ROUTE, S.ON_SITE])
def test_cancel_from_every_open_status(status: S) -> None:
    assert next_status(TicketClass.REPAIR, status, Action.CANCEL) is S.CANCELLED


@pytest.mark.parametrize(
    ("status", "action"),
    [
        (S.NEW, Action.ACCEPT),
        (S.ASSIGNED, Action.ARRIVE),  # must be en route first
        (S.ACCEPTED, Action.RESOLVE),
        (S.ON_SITE, Action.DECLINE),
        (S.RESOLVED, Action.ACCEPT),
        (S.CLOSED, Action.CANCEL),
        (S.CANCELLED, Action.ASSIGN),
        (S.ACCEPTED, Action.RECOVER),  # once accepted, the technician decides
        (S.ON_SITE, Action.RECOVER),
        (S.CANCELLED, Action.REOPEN),  # a cancelled ticket stays cancelled: a raise opens a new one
    ],
)
def test_invalid_repair_transitions_say_what_is_allowed(status: S, action: Action) -> None:
    with pytest.raises(InvalidTransitionError) as caught:
        next_status(TicketClass.REPAIR, status, action)
    assert status.value.replace("_", " ") in caught.value.message
    assert "allowed now" in caught.value.message or "no action" in caught.value.message


def test_closed_tickets_only_reopen_and_cancelled_ones_allow_nothing() -> None:
    for table in TRANSITIONS.values():
        assert not [key for key in table if key[0] is S.CANCELLED]
        assert [a for (s, a) in table if s is S.CLOSED] == [Action.REOPEN]
        assert table[(S.RESOLVED, Action.REOPEN)] is S.NEW


def test_a_repair_nobody_accepted_may_recover() -> None:
    for status in (S.NEW, S.ASSIGNED):
        assert next_status(TicketClass.REPAIR, status, Action.RECOVER) is S.RESOLVED


def test_nobody_may_reopen_by_hand() -> None:
    for role in Role:
        with pytest.raises(PermissionDeniedError):
            authorize(Action.REOPEN, role, ticket_class=TicketClass.REPAIR, is_assignee=True)


def test_store_tasks_are_not_dispatched_but_resolve_and_recover() -> None:
    assert next_status(TicketClass.STORE_TASK, S.NEW, Action.RECOVER) is S.RESOLVED
    assert next_status(TicketClass.STORE_TASK, S.NEW, Action.RESOLVE) is S.RESOLVED
    with pytest.raises(InvalidTransitionError):
        next_status(TicketClass.STORE_TASK, S.NEW, Action.ASSIGN)


def test_technician_actions_need_the_assignee() -> None:
    authorize(Action.ACCEPT, Role.TECHNICIAN, ticket_class=TicketClass.REPAIR, is_assignee=True)
    with pytest.raises(PermissionDeniedError, match="not assigned to you"):
        authorize(Action.ACCEPT, Role.TECHNICIAN, ticket_class=TicketClass.REPAIR, is_assignee=False)
    with pytest.raises(PermissionDeniedError):
        authorize(Action.ARRIVE, Role.DISPATCHER, ticket_class=TicketClass.REPAIR, is_assignee=False)


def test_close_cancel_assign_are_for_dispatchers_and_admins() -> None:
    for action in (Action.CLOSE, Action.CANCEL, Action.ASSIGN):
        authorize(action, Role.DISPATCHER, ticket_class=TicketClass.REPAIR, is_assignee=False)
        authorize(action, Role.ADMIN, ticket_class=TicketClass.REPAIR, is_assignee=False)
        for role in (Role.TECHNICIAN, Role.FACILITIES, Role.STORE_STAFF):
            with pytest.raises(PermissionDeniedError):
                authorize(action, role, ticket_class=TicketClass.REPAIR, is_assignee=True)


def test_store_staff_resolve_store_tasks_only() -> None:
    authorize(Action.RESOLVE, Role.STORE_STAFF, ticket_class=TicketClass.STORE_TASK, is_assignee=False)
    with pytest.raises(PermissionDeniedError):
        authorize(Action.RESOLVE, Role.STORE_STAFF, ticket_class=TicketClass.REPAIR, is_assignee=False)
    with pytest.raises(PermissionDeniedError):
        authorize(Action.RESOLVE, Role.TECHNICIAN, ticket_class=TicketClass.STORE_TASK, is_assignee=False)


def test_nobody_may_recover_by_hand() -> None:
    for role in Role:
        with pytest.raises(PermissionDeniedError):
            authorize(Action.RECOVER, role, ticket_class=TicketClass.STORE_TASK, is_assignee=True)


def test_the_hint_lists_only_actions_a_person_can_take() -> None:
    with pytest.raises(InvalidTransitionError) as caught:
        next_status(TicketClass.REPAIR, S.NEW, Action.ACCEPT)
    assert "allowed now: assign, cancel)" in caught.value.message  # not recover / correlate (central's own)
