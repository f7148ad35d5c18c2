"""Login, logout, the current user and the users administration API (auth domain, HTTP).

`POST /auth/token` is the OAuth2 password flow: a form (`grant_type=password&username=&password=`,
what OAuth2 clients and Swagger UI's "Authorize" send) or, for the handheld app, the same
fields as JSON.

`/users...` is for admins only (`Permission.USERS_MANAGE`); `POST /auth/me/password` is for
everyone logged in. Routes are thin: the service checks, the route commits.
"""

from __future__ import annotations

import json
import logging
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, Response
from pydantic import ValidationError

from central.auth import schemas, service
from central.auth.errors import InvalidLoginRequest
from central.auth.models import Role, TokenRequest, TokenResponse, User, UserRead
from central.auth.permissions import Permission, require
from central.deps import BearerToken, CurrentUser, RuntimeDep, SessionDep

__all__ = ["InvalidLoginRequest", "router"]  # central.app maps InvalidLoginRequest (and its subclasses) to 422

log = logging.getLogger(__name__)
router = APIRouter(tags=["auth"])
users_router = APIRouter(prefix="/users", tags=["users"])
Admin = Annotated[User, Depends(require(Permission.USERS_MANAGE))]

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


@router.post("/auth/me/password", status_code=204)
def change_own_password(body: schemas.PasswordChange, user: CurrentUser, token: BearerToken,
                        session: SessionDep) -> Response:
    """Change your own password (needs the current one); your other sessions end, this one goes on."""
    service.change_own_password(session=session, user=user, current=body.current_password, new=body.new_password,
                                token=token)
    session.commit()
    log.info("user %s changed their password", user.username)
    return Response(status_code=204)


# --- users administration (admins only) ---


@users_router.get("", response_model=schemas.UserPage)
def list_users(
    session: SessionDep,
    admin: Admin,
    role: Role | None = None,
    region: str | None = None,
    store_id: str | None = None,
    active: bool | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> schemas.UserPage:
    """Users by username, filtered by every parameter given."""
    total, rows = service.list_users(session=session, role=role, region=region, store_id=store_id, active=active,
                                     limit=limit, offset=offset)
    return schemas.UserPage(total=total, items=[schemas.UserDetail.model_validate(u) for u in rows])


@users_router.get("/{user_id}", response_model=schemas.UserDetail)
def get_user(user_id: int, session: SessionDep, admin: Admin) -> schemas.UserDetail:
    return schemas.UserDetail.model_validate(service.get_user(session=session, user_id=user_id))


@users_router.post("", response_model=schemas.UserDetail, status_code=201)
def create_user(body: schemas.UserCreate, session: SessionDep, runtime: RuntimeDep, admin: Admin) -> schemas.UserDetail:
    user = service.create_user(session=session, fields=body, now=runtime.clock.now())
    session.commit()
    log.info("admin %s created user %s (%s)", admin.username, user.username, user.role.value)
    return schemas.UserDetail.model_validate(user)


@users_router.patch("/{user_id}", response_model=schemas.UserDetail)
def update_user(user_id: int, body: schemas.UserUpdate, session: SessionDep, admin: Admin) -> schemas.UserDetail:
    """Change the fields sent. Deactivating a user or changing their role ends their sessions at once."""
    user = service.get_user(session=session, user_id=user_id)
    service.update_user(session=session, user=user, changes=body, actor=admin)
    session.commit()
    log.info("admin %s changed user %s: %s", admin.username, user.username, ", ".join(sorted(body.model_fields_set)))
    return schemas.UserDetail.model_validate(user)


@users_router.post("/{user_id}/password", status_code=204)
def set_password(user_id: int, body: schemas.PasswordSet, session: SessionDep, admin: Admin) -> Response:
    """Set a user's password; every session of theirs ends."""
    user = service.get_user(session=session, user_id=user_id)
    service.set_password(session=session, user=user, password=body.password)
    session.commit()
    log.info("admin %s set the password of user %s", admin.username, user.username)
    return Response(status_code=204)


router.include_router(users_router)
