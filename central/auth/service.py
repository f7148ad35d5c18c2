"""Authentication (auth domain service): passwords to tokens, tokens to users. Never commits."""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime, timedelta

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from central.auth.models import ApiToken, User
from central.auth.passwords import DUMMY_HASH, hash_password, needs_rehash, verify_password
from central.errors import NotAuthenticatedError

_BAD_LOGIN = "invalid username or password"


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
