"""Who may do what (auth domain, pure data + one FastAPI dependency factory).

Permissions are a table, not if-chains: `ROLE_PERMISSIONS[role]` is the whole answer for a
role, and the permission matrix test (tests/integration/central/test_permission_matrix.py)
checks every endpoint against every role. Ticket actions have their own table
(`central.tickets.policy.ROLES_FOR_ACTION`), because they also depend on the ticket.

Row scoping on top of permissions:
- a technician sees and changes only the tickets assigned to them;
- store staff see only their own store (`User.store_id`; none at all without one).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from enum import StrEnum
from types import MappingProxyType
from typing import Annotated

from fastapi import Depends

from central.auth.models import Role, User
from central.deps import CurrentUser
from central.errors import PermissionDeniedError


class Permission(StrEnum):
    TICKETS_READ_ALL = "tickets.read_all"  # every ticket (else: own jobs, or own store's)
    TICKETS_DISPATCH = "tickets.dispatch"  # assign, reassign, cancel, close, change priority
    STORES_READ_ALL = "stores.read_all"  # every store and device (else: own store)
    TECHNICIANS_READ = "technicians.read"  # the technician list with their load
    THRESHOLDS_EDIT = "thresholds.edit"
    THRESHOLDS_READ = "thresholds.read"
    SLA_EDIT = "sla.edit"  # SLA policies, priority rules
    CALENDARS_EDIT = "calendars.edit"
    DEAD_LETTERS_READ = "dead_letters.read"
    USERS_MANAGE = "users.manage"
    TELEMETRY_READ = "telemetry.read"  # temperature logs (store staff: own store)


P = Permission
_SUPERVISING = frozenset({P.TICKETS_READ_ALL, P.TICKETS_DISPATCH, P.STORES_READ_ALL, P.TECHNICIANS_READ,
                          P.THRESHOLDS_READ, P.TELEMETRY_READ})
ROLE_PERMISSIONS: Mapping[Role, frozenset[Permission]] = MappingProxyType({
    Role.TECHNICIAN: frozenset({P.STORES_READ_ALL}),  # the stores and devices they are sent to
    Role.STORE_STAFF: frozenset({P.TELEMETRY_READ}),
    Role.DISPATCHER: _SUPERVISING | {P.DEAD_LETTERS_READ},
    Role.SUPERVISOR: _SUPERVISING,
    Role.REGIONAL_MANAGER: _SUPERVISING,
    Role.FACILITIES: frozenset({P.STORES_READ_ALL, P.THRESHOLDS_EDIT, P.THRESHOLDS_READ, P.CALENDARS_EDIT,
                                P.TELEMETRY_READ}),
    Role.ADMIN: frozenset(Permission),
})  # fmt: skip


def has(user: User, permission: Permission) -> bool:
    return permission in ROLE_PERMISSIONS[user.role]


def check(user: User, permission: Permission) -> None:
    if not has(user, permission):
        raise PermissionDeniedError(
            f"a {user.role.value.replace('_', ' ')} may not do this (needs {permission.value})")


def require(*permissions: Permission) -> Callable[[User], User]:
    """A dependency: the current user, if their role has every one of `permissions` (else 403)."""

    def dependency(user: CurrentUser) -> User:
        for permission in permissions:
            check(user, permission)
        return user

    return dependency


def store_scope(user: User) -> str | None:
    """The one store this user is confined to, or None for no confinement.

    Store staff without a store are confined to "" (no store has that id): they see nothing.
    """
    if user.role is Role.STORE_STAFF:
        return user.store_id or ""
    return None


def check_store(user: User, store_id: str) -> None:
    scope = store_scope(user)
    if scope is not None and scope != store_id:
        raise PermissionDeniedError("store staff see only their own store")


def Requires(*permissions: Permission) -> type[User]:  # noqa: N802 - reads like a type in signatures
    """`user: Requires(Permission.X)` in a route signature."""
    return Annotated[User, Depends(require(*permissions))]  # type: ignore[return-value]
