"""Central's one exception tree (domain layer); `app.py` maps it to HTTP in one handler."""

from __future__ import annotations


class CentralError(Exception):
    """Base of every domain failure central reports to a caller."""

    code = "error"

    def __init__(self, message: str) -> None:
        self.message = message
        super().__init__(message)


class NotFoundError(CentralError):
    code = "not_found"


class NotAuthenticatedError(CentralError):
    code = "not_authenticated"


class PermissionDeniedError(CentralError):
    code = "forbidden"


class ConflictError(CentralError):
    """The request conflicts with the current state (HTTP 409), e.g. a name already taken."""

    code = "conflict"


class InvalidTransitionError(ConflictError):
    code = "invalid_transition"


class VersionConflictError(CentralError):
    """The client acted on an older version of the ticket than the current one."""

    code = "version_conflict"


class SeedError(CentralError):
    """The seed file is unreadable or invalid (names the file, the entry and the reason)."""

    code = "seed_error"
