"""Login, logout and the current user (auth domain, HTTP).

`POST /auth/token` is the OAuth2 password flow: a form (`grant_type=password&username=&password=`,
what OAuth2 clients and Swagger UI's "Authorize" send) or, for the handheld app, the same
fields as JSON.
"""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter, Request, Response
from pydantic import ValidationError

from central.auth import service
from central.auth.models import TokenRequest, TokenResponse, UserRead
from central.deps import BearerToken, CurrentUser, RuntimeDep, SessionDep
from central.errors import CentralError

router = APIRouter(tags=["auth"])

_FORM = "application/x-www-form-urlencoded"
_TOKEN_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            _FORM: {"schema": {
                "type": "object", "required": ["username", "password"],
                "properties": {"grant_type": {"type": "string", "enum": ["password"]},
                               "username": {"type": "string"}, "password": {"type": "string", "format": "password"}},
            }},
            "application/json": {"schema": TokenRequest.model_json_schema()},
        },
    }
}


class InvalidLoginRequest(CentralError):
    """The token request itself is malformed (HTTP 422)."""

    code = "invalid_request"


async def _credentials(request: Request) -> TokenRequest:
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    try:
        if content_type == _FORM:
            form = await request.form()
            grant_type = form.get("grant_type")
            if grant_type not in (None, "", "password"):
                raise InvalidLoginRequest(f"grant_type must be 'password', not {grant_type!r}")
            return TokenRequest.model_validate({"username": form.get("username"), "password": form.get("password")})
        if content_type in ("application/json", ""):
            return TokenRequest.model_validate(json.loads(await request.body() or b"null"))
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(part) for part in first["loc"]) or "body"
        raise InvalidLoginRequest(f"{field}: {first['msg']}") from exc
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InvalidLoginRequest("the body is not valid JSON") from exc
    raise InvalidLoginRequest(f"send the credentials as {_FORM} or application/json, not {content_type!r}")


@router.post("/auth/token", response_model=TokenResponse, openapi_extra=_TOKEN_BODY)
async def create_token(request: Request, session: SessionDep, runtime: RuntimeDep) -> TokenResponse:
    body = await _credentials(request)
    now = runtime.clock.now()
    user = service.authenticate(session=session, username=body.username, password=body.password)
    token, expires_at = service.issue_token(session=session, user=user, now=now, ttl_s=runtime.settings.token_ttl_s)
    session.commit()
    return TokenResponse(access_token=token, expires_at=expires_at)


@router.post("/auth/logout", status_code=204)
def logout(user: CurrentUser, token: BearerToken, session: SessionDep) -> Response:
    """Revoke the token this request was made with."""
    service.revoke_token(session=session, token=token)
    session.commit()
    return Response(status_code=204)


@router.get("/me", response_model=UserRead)
def me(user: CurrentUser) -> UserRead:
    return UserRead.model_validate(user)


@router.get("/auth/me", response_model=UserRead)
def auth_me(user: CurrentUser) -> UserRead:
    """The same as /me, where OAuth2 clients look for it."""
    return UserRead.model_validate(user)
