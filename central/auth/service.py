"""Authentication and user administration (auth domain service). Never commits.

Passwords to tokens, tokens to users; and creating, changing and deactivating users. Every
change that should end a user's sessions at once (deactivation, a new password, a new role)
deletes their `ApiToken` rows in the same transaction.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Sequence
from datetime import datetime, timedelta

from pydantic import SecretStr
from sqlalchemy import Select, delete, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from central.auth.errors import InvalidUserError, SelfLockoutError, UsernameTakenError, WrongPasswordError
from central.auth.models import ApiToken, Role, User
from central.auth.passwords import DUMMY_HASH, hash_password, needs_rehash, verify_password
from central.auth.schemas import UserCreate, UserUpdate
from central.errors import NotAuthenticatedError, NotFoundError
from central.stores.models import Store

_BAD_LOGIN = "invalid username or password"
MIN_PASSWORD = 12
MAX_PASSWORD = 256


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def get_by_username(*, session: Session, username: str) -> User | None:
    return session.scalar(select(User).where(User.username == username))


def authenticate(*, session: Session, username: str, password: str) -> User:
    """The active user with this password, or NotAuthenticatedError (same message either way)."""
    user = get_by_username(session=session, username=username)
    if user is None or not user.active:
        verify_password(password, DUMMY_HASH)  # same cost as a real check
        raise NotAuthenticatedError(_BAD_LOGIN)
    if not verify_password(password, user.password_hash):
        raise NotAuthenticatedError(_BAD_LOGIN)
    if needs_rehash(user.password_hash):
        user.password_hash = hash_password(password)
    return user


def issue_token(*, session: Session, user: User, now: datetime, ttl_s: int) -> tuple[str, datetime]:
    """A new random bearer token for `user`; only its digest is stored."""
    session.execute(delete(ApiToken).where(ApiToken.user_id == user.id, ApiToken.expires_at <= now))
    token = secrets.token_urlsafe(32)
    expires_at = now + timedelta(seconds=ttl_s)
    session.add(ApiToken(user_id=user.id, token_hash=token_digest(token), created_at=now, expires_at=expires_at))
    return token, expires_at


def revoke_token(*, session: Session, token: str) -> None:
    session.execute(delete(ApiToken).where(ApiToken.token_hash == token_digest(token)))


def user_for_token(*, session: Session, token: str, now: datetime) -> User:
    user = session.scalar(
        select(User)
        .join(ApiToken, ApiToken.user_id == User.id)
        .where(ApiToken.token_hash == token_digest(token), ApiToken.expires_at > now, User.active.is_(True))
    )
    if user is None:
        raise NotAuthenticatedError("the token is invalid or has expired")
    return user


def revoke_tokens(*, session: Session, user_id: int, keep: str | None = None) -> None:
    """End every session of the user (but the one of token `keep`, when given)."""
    stmt = delete(ApiToken).where(ApiToken.user_id == user_id)
    if keep is not None:
        stmt = stmt.where(ApiToken.token_hash != token_digest(keep))
    session.execute(stmt)


# --- user administration ---


def check_password(password: str, *, username: str, field: str = "password") -> None:
    """Long enough to resist guessing, and not the username (InvalidUserError naming `field`)."""
    if len(password) < MIN_PASSWORD:
        raise InvalidUserError(field, f"must be at least {MIN_PASSWORD} characters")
    if len(password) > MAX_PASSWORD:
        raise InvalidUserError(field, f"must be at most {MAX_PASSWORD} characters")
    if password.strip().casefold() == username.casefold():
        raise InvalidUserError(field, "must not be the username")


def _check_store(*, session: Session, role: Role, store_id: str | None) -> None:
    """Store staff need an existing store; nobody else has one."""
    if role is Role.STORE_STAFF:
        if store_id is None:
            raise InvalidUserError("store_id", "store_staff need a store: give the id of an existing store")
        if session.get(Store, store_id) is None:
            raise NotFoundError(f"store_id: there is no store {store_id!r}")
    elif store_id is not None:
        raise InvalidUserError("store_id", f"only store_staff have a store, not a {role.value} "
                                           "(send store_id: null with the new role)")


def _filtered(*, role: Role | None, region: str | None, store_id: str | None, active: bool | None) -> Select[User]:
    query = select(User)
    if role is not None:
        query = query.where(User.role == role)
    if region is not None:
        query = query.where(User.region == region)
    if store_id is not None:
        query = query.where(User.store_id == store_id)
    if active is not None:
        query = query.where(User.active.is_(active))
    return query


def list_users(
    *, session: Session, role: Role | None = None, region: str | None = None, store_id: str | None = None,
    active: bool | None = None, limit: int = 100, offset: int = 0,
) -> tuple[int, Sequence[User]]:  # fmt: skip
    """(how many match, one page of them by username)."""
    query = _filtered(role=role, region=region, store_id=store_id, active=active)
    total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
    return total, session.scalars(query.order_by(User.username).limit(limit).offset(offset)).all()


def get_user(*, session: Session, user_id: int) -> User:
    user = session.get(User, user_id)
    if user is None:
        raise NotFoundError(f"there is no user {user_id}")
    return user


def create_user(*, session: Session, fields: UserCreate, now: datetime) -> User:
    password = fields.password.get_secret_value()
    check_password(password, username=fields.username)
    _check_store(session=session, role=fields.role, store_id=fields.store_id)
    if get_by_username(session=session, username=fields.username) is not None:
        raise UsernameTakenError(f"username: {fields.username!r} is taken")
    user = User(username=fields.username, display_name=fields.display_name, role=fields.role,
                password_hash=hash_password(password), active=True, created_at=now, region=fields.region,
                store_id=fields.store_id)
    session.add(user)
    try:
        session.flush()  # a concurrent create of the same name fails here (the request then rolls back)
    except IntegrityError as exc:
        raise UsernameTakenError(f"username: {fields.username!r} is taken") from exc
    return user


def update_user(*, session: Session, user: User, changes: UserUpdate, actor: User) -> User:
    """Apply the fields sent; a deactivation or a new role ends the user's sessions."""
    sent = changes.model_fields_set
    if user.id == actor.id and changes.active is False:
        raise SelfLockoutError("you cannot deactivate yourself: another admin must, so central always keeps one")
    if user.id == actor.id and changes.role not in (None, Role.ADMIN):
        raise SelfLockoutError("you cannot remove your own admin role: another admin must, "
                               "so central always keeps one")
    role = changes.role or user.role
    store_id = changes.store_id if "store_id" in sent else user.store_id
    if sent & {"role", "store_id"}:
        _check_store(session=session, role=role, store_id=store_id)
    ends_sessions = (changes.active is False and user.active) or role is not user.role
    if changes.display_name is not None:
        user.display_name = changes.display_name
    if changes.region is not None:
        user.region = changes.region
    if changes.active is not None:
        user.active = changes.active
    user.role, user.store_id = role, store_id
    if ends_sessions:
        revoke_tokens(session=session, user_id=user.id)
    return user


def set_password(
    *, session: Session, user: User, password: SecretStr, keep_token: str | None = None, field: str = "password",
) -> None:  # fmt: skip
    """A new password for `user`; every session but `keep_token`'s ends."""
    secret = password.get_secret_value()
    check_password(secret, username=user.username, field=field)
    user.password_hash = hash_password(secret)
    revoke_tokens(session=session, user_id=user.id, keep=keep_token)


def change_own_password(*, session: Session, user: User, current: SecretStr, new: SecretStr, token: str) -> None:
    """The user's own change: needs the current password; the session it is made from goes on."""
    if not verify_password(current.get_secret_value(), user.password_hash):
        raise WrongPasswordError("current_password is wrong")
    if new.get_secret_value() == current.get_secret_value():
        raise InvalidUserError("new_password", "must differ from the current password")
    set_password(session=session, user=user, password=new, keep_token=token, field="new_password")
