"""Login and the current user (auth domain, HTTP)."""

from __future__ import annotations

from fastapi import APIRouter

from central.auth import service
from central.auth.models import TokenRequest, TokenResponse, UserRead
from central.deps import CurrentUser, RuntimeDep, SessionDep

router = APIRouter(tags=["auth"])


@router.post("/auth/token", response_model=TokenResponse)
def create_token(body: TokenRequest, session: SessionDep, runtime: RuntimeDep) -> TokenResponse:
    now = runtime.clock.now()
    user = service.authenticate(session=session, username=body.username, password=body.password)
    token, expires_at = service.issue_token(session=session, user=user, now=now, ttl_s=runtime.settings.token_ttl_s)
    session.commit()
    return TokenResponse(access_token=token, expires_at=expires_at)


@router.get("/me", response_model=UserRead)
def me(user: CurrentUser) -> UserRead:
    return UserRead.model_validate(user)
