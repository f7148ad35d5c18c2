"""FastAPI dependencies (HTTP layer): the runtime, a session per request, the current user."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import OAuth2PasswordBearer
from sqlalchemy.orm import Session

from central.auth import service as auth_service
from central.auth.models import User
from central.errors import NotAuthenticatedError
from central.runtime import Runtime

_bearer = OAuth2PasswordBearer(tokenUrl="/api/v1/auth/token", auto_error=False,
                               description="a bearer token from POST /api/v1/auth/token (OAuth2 password flow)")


def get_runtime(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]


def get_session(runtime: RuntimeDep) -> Iterator[Session]:
    """One session per request; the route commits, anything uncommitted is rolled back."""
    with runtime.database.session() as session:
        yield session


SessionDep = Annotated[Session, Depends(get_session)]


def get_bearer_token(token: Annotated[str | None, Depends(_bearer)]) -> str:
    if not token:
        raise NotAuthenticatedError("missing bearer token: log in with POST /api/v1/auth/token")
    return token


BearerToken = Annotated[str, Depends(get_bearer_token)]


def get_current_user(session: SessionDep, runtime: RuntimeDep, token: BearerToken) -> User:
    return auth_service.user_for_token(session=session, token=token, now=runtime.clock.now())


CurrentUser = Annotated[User, Depends(get_current_user)]
