"""The auth domain's failures (domain layer), each a `central.errors.CentralError`.

`central.app` maps errors to HTTP by class: `InvalidLoginRequest` is the base of every "this
request breaks a rule" error here (422); a taken username is a `ConflictError` (409).
"""

from __future__ import annotations

from central.errors import CentralError, ConflictError


class InvalidLoginRequest(CentralError):
    """An auth request is malformed or breaks a rule (HTTP 422): a token request, a user's fields."""

    code = "invalid_request"

    def __init__(self, message: str, *, field: str | None = None) -> None:
        self.field = field
        self.details = {"field": field} if field else {}  # added to the HTTP body
        super().__init__(f"{field}: {message}" if field else message)


class InvalidUserError(InvalidLoginRequest):
    """A user's fields break a rule (HTTP 422); `field` names the one to fix."""

    code = "invalid_user"

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message, field=field)


class UsernameTakenError(ConflictError):
    """Another user already has this username (HTTP 409)."""

    code = "username_taken"


class WrongPasswordError(CentralError):
    """The current password given to change one's own password is wrong (HTTP 400).

    Not 401/403: the caller is authenticated and allowed; the request is what is wrong.
    """

    code = "wrong_password"


class SelfLockoutError(CentralError):
    """An admin tried to deactivate themselves or drop their own admin role (HTTP 400)."""

    code = "self_lockout"
