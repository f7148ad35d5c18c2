"""Paused statuses: which transitions lead in and out, who may take them, resume goes back."""

from __future__ import annotations

import pytest

from central.auth.models import Role
from central.errors import InvalidTransitionError, PermissionDeniedError
from central.tickets import policy
from central.tickets.models import OPEN_STATUSES
from central.tickets.policy import Action, authorize, next_status
from protocols.mqtt.messages import TicketClass
from protocols.mqtt.messages import TicketStatusValue as S

R = TicketClass.REPAIR


def test_paused_statuses_are_open_and_cancellable() -> None:
    assert S.AWAITING_PARTS in OPEN_STATUSES and S.ON_HOLD in OPEN_STATUSES
    assert next_status(R, S.AWAITING_PARTS, Action.CANCEL) is S.CANCELLED
    assert policy.PAUSED_STATUSES == {S.AWAITING_PARTS, S.ON_HOLD}


@pytest.mark.parametrize("status", [S.ASSIGNED, S.ACCEPTED, S.EN_ROUTE, S.ON_SITE])
def test_hold_from_working_statuses_and_resume_to_where_it_left(status: S) -> None:
    assert next_status(R, status, Action.HOLD) is S.ON_HOLD
    assert next_status(R, S.ON_HOLD, Action.RESUME, resume_to=status) is status


@pytest.mark.parametrize(("status", "action"), [(S.NEW, Action.HOLD), (S.ACCEPTED, Action.AWAIT_PARTS),
                                                (S.ON_HOLD, Action.HOLD), (S.ON_SITE, Action.RESUME),
                                                (S.AWAITING_PARTS, Action.RESOLVE)])
def test_invalid_pause_transitions_say_what_is_allowed(status: S, action: Action) -> None:
    with pytest.raises(InvalidTransitionError, match="allowed now"):
        next_status(R, status, action)


def test_store_tasks_do_not_pause() -> None:
    with pytest.raises(InvalidTransitionError):
        next_status(TicketClass.STORE_TASK, S.NEW, Action.HOLD)


def test_awaiting_parts_is_the_assignees_hold_is_also_the_dispatchers() -> None:
    authorize(Action.AWAIT_PARTS, Role.TECHNICIAN, ticket_class=R, is_assignee=True)
    with pytest.raises(PermissionDeniedError):
        authorize(Action.AWAIT_PARTS, Role.DISPATCHER, ticket_class=R, is_assignee=False)
    authorize(Action.HOLD, Role.DISPATCHER, ticket_class=R, is_assignee=False)
    authorize(Action.RESUME, Role.ADMIN, ticket_class=R, is_assignee=False)
    with pytest.raises(PermissionDeniedError, match="not assigned to you"):
        authorize(Action.HOLD, Role.TECHNICIAN, ticket_class=R, is_assignee=False)
    with pytest.raises(PermissionDeniedError):
        authorize(Action.RESUME, Role.STORE_STAFF, ticket_class=R, is_assignee=False)
