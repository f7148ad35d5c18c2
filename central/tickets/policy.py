"""Ticket rules as data (tickets domain, pure): priority, skills, transitions, permissions.

Tables, not if-chains: a rule change is a one-line diff that the unit tests pin down.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from enum import StrEnum
from types import MappingProxyType

from central.auth.models import Role
from central.errors import InvalidTransitionError, PermissionDeniedError
from central.tickets.models import OPEN_STATUSES, EventType
from protocols.mqtt.messages import FaultClass, Severity, TicketClass
from protocols.mqtt.messages import TicketStatusValue as S

# --- priority: 1 (most urgent) .. 5 -------------------------------------------------------------
_C, _MA, _MI, _I = Severity.CRITICAL, Severity.MAJOR, Severity.MINOR, Severity.INFO
PRIORITY: Mapping[tuple[FaultClass, Severity], int] = MappingProxyType(
    {
        (FaultClass.FOOD_SAFETY, _C): 1, (FaultClass.FOOD_SAFETY, _MA): 2, (FaultClass.FOOD_SAFETY, _MI): 4,
        (FaultClass.FOOD_SAFETY, _I): 5,
        (FaultClass.SAFETY, _C): 1, (FaultClass.SAFETY, _MA): 2, (FaultClass.SAFETY, _MI): 4,
        (FaultClass.SAFETY, _I): 5,
        (FaultClass.REVENUE, _C): 2, (FaultClass.REVENUE, _MA): 3, (FaultClass.REVENUE, _MI): 4,
        (FaultClass.REVENUE, _I): 5,
        (FaultClass.EQUIPMENT, _C): 2, (FaultClass.EQUIPMENT, _MA): 3, (FaultClass.EQUIPMENT, _MI): 4,
        (FaultClass.EQUIPMENT, _I): 5,
        (FaultClass.COMFORT, _C): 3, (FaultClass.COMFORT, _MA): 4, (FaultClass.COMFORT, _MI): 4,
        (FaultClass.COMFORT, _I): 5,
    }
)  # fmt: skip


def priority_for(fault_class: FaultClass, severity: Severity) -> int:
    return PRIORITY[(fault_class, severity)]


# --- skills: the device profile's kind -> the skill a technician needs -------------------------
SKILL_FOR_KIND: Mapping[str, str] = MappingProxyType(
    {
        "refrigeration_controller": "refrigeration",
        "self_checkout_lane": "self_checkout",
        "printer": "self_checkout",
        "bill_validator": "self_checkout",
        "ups": "electrical",
        "fieldbus": "controls",  # a whole bus silent: wiring, RS-485 converter, controller supply
        "store_power": "electrical",  # every bus silent and the UPS on battery
        "store_gateway": "controls",  # the store's gateway silent at central: network, router, gateway PC
    }
)

# The device models the edge uses for correlated faults (bus_offline, store_power_loss) -> kind.
CORRELATED_KINDS: Mapping[str, str] = MappingProxyType(
    {"bus": "fieldbus", "store": "store_power", "gateway": "store_gateway"})  # gateway: central's store_offline


def skill_for_kind(kind: str | None) -> str | None:
    return SKILL_FOR_KIND.get(kind) if kind else None


# --- transitions --------------------------------------------------------------------------------
class Action(StrEnum):
    ASSIGN = "assign"
    ACCEPT = "accept"
    DECLINE = "decline"
    EN_ROUTE = "en_route"
    ARRIVE = "arrive"
    RESOLVE = "resolve"
    CLOSE = "close"
    CANCEL = "cancel"
    RECOVER = "recover"  # the device reported the fault cleared (store tasks only)
    AWAIT_PARTS = "await_parts"  # on site, the repair needs a part: the SLA clock pauses
    HOLD = "hold"  # no store access or waiting on the store: the SLA clock pauses
    RESUME = "resume"  # back to the status the ticket was paused from
    REOPEN = "reopen"  # the same fault raised again within the reopen window of the resolution
    CORRELATE = "correlate"  # attached to a store-wide incident before anyone accepted it: back to new


_REPAIR: dict[tuple[S, Action], S] = {
    (S.NEW, Action.ASSIGN): S.ASSIGNED,
    (S.ASSIGNED, Action.ASSIGN): S.ASSIGNED,  # reassignment by a dispatcher
    (S.ASSIGNED, Action.ACCEPT): S.ACCEPTED,
    (S.ASSIGNED, Action.DECLINE): S.NEW,
    (S.ACCEPTED, Action.DECLINE): S.NEW,
    (S.ACCEPTED, Action.EN_ROUTE): S.EN_ROUTE,
    (S.EN_ROUTE, Action.ARRIVE): S.ON_SITE,
    (S.ON_SITE, Action.RESOLVE): S.RESOLVED,
    (S.RESOLVED, Action.CLOSE): S.CLOSED,
    (S.ON_SITE, Action.AWAIT_PARTS): S.AWAITING_PARTS,
    (S.AWAITING_PARTS, Action.RESUME): S.ON_SITE,  # the default; `resume_to` (paused_from) decides
    (S.ON_HOLD, Action.RESUME): S.ASSIGNED,
    (S.NEW, Action.RECOVER): S.RESOLVED,  # cleared and stayed clear before anyone accepted the job
    (S.ASSIGNED, Action.RECOVER): S.RESOLVED,
    (S.RESOLVED, Action.REOPEN): S.NEW,
    (S.CLOSED, Action.REOPEN): S.NEW,
    (S.NEW, Action.CORRELATE): S.NEW,
    (S.ASSIGNED, Action.CORRELATE): S.NEW,  # the incident's technician takes it instead
} | {(status, Action.CANCEL): S.CANCELLED for status in OPEN_STATUSES} | {
    (status, Action.HOLD): S.ON_HOLD for status in (S.ASSIGNED, S.ACCEPTED, S.EN_ROUTE, S.ON_SITE)
}
_STORE_TASK: dict[tuple[S, Action], S] = {
    (S.NEW, Action.RESOLVE): S.RESOLVED,  # done by the store's own staff
    (S.NEW, Action.RECOVER): S.RESOLVED,
    (S.NEW, Action.CANCEL): S.CANCELLED,
    (S.RESOLVED, Action.CLOSE): S.CLOSED,
    (S.RESOLVED, Action.REOPEN): S.NEW,
    (S.CLOSED, Action.REOPEN): S.NEW,
}

TRANSITIONS: Mapping[TicketClass, Mapping[tuple[S, Action], S]] = MappingProxyType(
    {TicketClass.REPAIR: MappingProxyType(_REPAIR), TicketClass.STORE_TASK: MappingProxyType(_STORE_TASK)}
)

EVENT_FOR_ACTION: Mapping[Action, EventType] = MappingProxyType(
    {
        Action.ASSIGN: EventType.ASSIGNED,
        Action.ACCEPT: EventType.ACCEPTED,
        Action.DECLINE: EventType.DECLINED,
        Action.EN_ROUTE: EventType.EN_ROUTE,
        Action.ARRIVE: EventType.ON_SITE,
        Action.RESOLVE: EventType.RESOLVED,
        Action.CLOSE: EventType.CLOSED,
        Action.CANCEL: EventType.CANCELLED,
        Action.RECOVER: EventType.RESOLVED,
        Action.AWAIT_PARTS: EventType.AWAITING_PARTS,
        Action.HOLD: EventType.HELD,
        Action.RESUME: EventType.RESUMED,
        Action.REOPEN: EventType.REOPENED,
        Action.CORRELATE: EventType.CORRELATED,
    }
)
PAUSED_STATUSES = frozenset({S.AWAITING_PARTS, S.ON_HOLD})  # the SLA clock stops
RECOVERABLE_STATUSES = frozenset({S.NEW, S.ASSIGNED})  # nobody has accepted the job: a recovery may resolve it
REOPENABLE_STATUSES = frozenset({S.RESOLVED, S.CLOSED})  # cancelled tickets stay cancelled: a raise opens a new one


@dataclass(frozen=True, slots=True)
class Lifecycle:
    """How a fault's ticket behaves over time (settings `recovery_grace_s`, `reopen_window_s`).

    - A repair nobody has accepted (new or assigned) whose fault clears and stays clear for
      `recovery_grace` resolves as "recovered"; once accepted, the technician decides.
    - A raise of the same fault within `reopen_window` of its ticket's resolution reopens that
      ticket (status new, dispatched again) instead of opening a new one.
    - `correlation_min_devices` devices of one store with new repairs within
      `correlation_window` become children of one incident (`central.tickets.links`).
    """

    recovery_grace: timedelta = timedelta(minutes=15)
    reopen_window: timedelta = timedelta(hours=24)
    correlation_window: timedelta = timedelta(minutes=10)  # faults of one store this close together correlate
    store_offline_grace: timedelta = timedelta(minutes=10)  # a silent gateway this long: a store_offline incident
    # distinct devices with new repairs in the window that make an incident; 0 (this default): never.
    # Central turns it on from its settings (STOREGUARD_CORRELATION_MIN_DEVICES, default 3).
    correlation_min_devices: int = 0


def next_status(ticket_class: TicketClass, status: S, action: Action, *, resume_to: S | None = None) -> S:
    """The status `action` leads to, or InvalidTransitionError saying what is allowed.

    RESUME goes back to `resume_to` (the status the ticket was paused from) when given."""
    table = TRANSITIONS[ticket_class]
    try:
        target = table[(status, action)]
        return resume_to if action is Action.RESUME and resume_to is not None else target
    except KeyError:
        allowed = sorted(a.value for (s, a) in table if s is status and ROLES_FOR_ACTION[a])  # not system-only
        hint = f"allowed now: {', '.join(allowed)}" if allowed else "no action is allowed now"
        raise InvalidTransitionError(
            f"cannot {action.value.replace('_', ' ')} a {ticket_class.value.replace('_', ' ')} ticket "
            f"that is {status.value.replace('_', ' ')} ({hint})"
        ) from None


# --- who may act --------------------------------------------------------------------------------
_DISPATCH = frozenset({Role.DISPATCHER, Role.SUPERVISOR, Role.REGIONAL_MANAGER, Role.ADMIN})
# may hold/resume any ticket and change its priority (supervisor roles where defined)
_MANAGE = frozenset(r for r in Role if r.value in ("dispatcher", "supervisor", "regional_manager", "admin"))
PRIORITY_CHANGERS = _MANAGE
ROLES_FOR_ACTION: Mapping[Action, frozenset[Role]] = MappingProxyType(
    {
        Action.ASSIGN: _DISPATCH,
        Action.ACCEPT: frozenset({Role.TECHNICIAN}),
        Action.DECLINE: frozenset({Role.TECHNICIAN}),
        Action.EN_ROUTE: frozenset({Role.TECHNICIAN}),
        Action.ARRIVE: frozenset({Role.TECHNICIAN}),
        Action.RESOLVE: frozenset({Role.TECHNICIAN}),
        Action.CLOSE: _DISPATCH,
        Action.CANCEL: _DISPATCH,
        Action.RECOVER: frozenset(),  # the device only
        Action.AWAIT_PARTS: frozenset({Role.TECHNICIAN}),
        Action.HOLD: frozenset({Role.TECHNICIAN}) | _MANAGE,
        Action.RESUME: frozenset({Role.TECHNICIAN}) | _MANAGE,
        Action.REOPEN: frozenset(),  # the device only (the fault raised again)
        Action.CORRELATE: frozenset(),  # central's correlation only
    }
)
STORE_TASK_RESOLVERS = frozenset({Role.STORE_STAFF, Role.DISPATCHER, Role.ADMIN})
ASSIGNEE_ONLY = frozenset({Action.ACCEPT, Action.DECLINE, Action.EN_ROUTE, Action.ARRIVE, Action.RESOLVE,
                           Action.AWAIT_PARTS})
ASSIGNEE_ONLY_FOR_TECHNICIANS = frozenset({Action.HOLD, Action.RESUME})  # others may act on any ticket


def authorize(action: Action, role: Role, *, ticket_class: TicketClass, is_assignee: bool) -> None:
    """Raise PermissionDeniedError unless `role` may take `action` on this ticket."""
    if ticket_class is TicketClass.STORE_TASK and action is Action.RESOLVE:
        if role in STORE_TASK_RESOLVERS:
            return
        raise PermissionDeniedError("store tasks are resolved by store staff or a dispatcher")
    if role not in ROLES_FOR_ACTION[action]:
        raise PermissionDeniedError(f"a {role.value.replace('_', ' ')} may not {action.value.replace('_', ' ')}")
    if action in ASSIGNEE_ONLY and not is_assignee:
        raise PermissionDeniedError("this ticket is not assigned to you")
    if action in ASSIGNEE_ONLY_FOR_TECHNICIANS and role is Role.TECHNICIAN and not is_assignee:
        raise PermissionDeniedError("this ticket is not assigned to you")
