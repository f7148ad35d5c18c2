"""Seed users and technicians from YAML (setup layer). Idempotent: re-running updates, never duplicates.

    users:                          # any role
      - username: dana
        display_name: Dana Dispatch
        role: dispatcher            # technician | dispatcher | supervisor | regional_manager |
                                    # facilities | store_staff | admin
        region: north               # technicians, dispatchers, supervisors, regional managers
        password: a-long-passphrase  # or password_hash: "$argon2id$..." (central.auth.passwords.hash_password)
    technicians:                    # role technician implied
      - username: tina
        display_name: Tina Tech
        password_hash: "$argon2id$v=19$m=65536,t=3,p=4$..."
        skills: [refrigeration, self_checkout]
        region: north
        active: true                # optional, default true

A technician may also be listed under `users` with `role: technician`. A store_staff user
names their store (`store: store-1`). An optional `stores:` section names stores and puts them
in a region (`- {id: store-1, name: Main Street, region: north}`); escalation to supervisors
and regional managers goes by the store's region.

Plain passwords are hashed on load and never stored. In production a plain password must
be at least 12 characters and not a well-known placeholder.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Literal, Self

import yaml
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, model_validator
from sqlalchemy import select
from sqlalchemy.orm import Session

from central.auth.models import Role, User
from central.auth.passwords import hash_password, is_password_hash, verify_password
from central.errors import SeedError
from central.settings import PLACEHOLDER_SECRETS
from central.stores.models import Store
from central.technicians.models import Technician

MIN_PRODUCTION_PASSWORD = 12
STORE_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$"
REGIONAL_ROLES = frozenset({Role.TECHNICIAN, Role.DISPATCHER, Role.SUPERVISOR, Role.REGIONAL_MANAGER})


class SeedUser(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    username: Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_.-]{0,63}$")]
    display_name: Annotated[str, Field(min_length=1, max_length=100)]
    role: Role
    password: SecretStr | None = None
    password_hash: str | None = None
    skills: list[Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{0,39}$")]] = Field(default_factory=list)
    region: Annotated[str, Field(max_length=64)] = ""
    store: Annotated[str, Field(pattern=STORE_ID_PATTERN)] | None = None  # store_staff: their store
    active: bool = True

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if (self.password is None) == (self.password_hash is None):
            raise ValueError("give exactly one of 'password' and 'password_hash'")
        if self.password is not None and not self.password.get_secret_value():
            raise ValueError("'password' must not be empty")
        if self.password_hash is not None and not is_password_hash(self.password_hash):
            raise ValueError("'password_hash' is not an argon2id (or legacy scrypt) hash; make one with "
                             "central.auth.passwords.hash_password")
        if self.role is not Role.TECHNICIAN and self.skills:
            raise ValueError("'skills' belong to technicians only")
        if self.region and self.role not in REGIONAL_ROLES:
            raise ValueError(f"'region' belongs to {', '.join(sorted(r.value for r in REGIONAL_ROLES))} only")
        if self.store is not None and self.role is not Role.STORE_STAFF:
            raise ValueError("'store' belongs to store_staff only")
        return self


class SeedStore(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    id: Annotated[str, Field(pattern=STORE_ID_PATTERN)]
    name: Annotated[str, Field(min_length=1, max_length=200)]
    region: Annotated[str, Field(max_length=64)] = ""


class SeedTechnician(SeedUser):
    role: Literal[Role.TECHNICIAN] = Role.TECHNICIAN


class SeedFile(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    stores: list[SeedStore] = Field(default_factory=list)
    users: list[SeedUser] = Field(default_factory=list)
    technicians: list[SeedTechnician] = Field(default_factory=list)

    @property
    def everyone(self) -> list[SeedUser]:
        return [*self.users, *self.technicians]

    @model_validator(mode="after")
    def _unique(self) -> Self:
        names = [u.username for u in self.everyone]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"duplicate usernames: {duplicates}")
        return self


@dataclass(frozen=True, slots=True)
class SeedSummary:
    created: int
    updated: int


def read_seed(path: Path | str) -> SeedFile:
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise SeedError(f"{path}: cannot read: {exc.strerror}") from exc
    except yaml.YAMLError as exc:
        raise SeedError(f"{path}: not YAML: {exc}".replace("\n", " ")) from exc
    try:
        return SeedFile.model_validate(raw or {})
    except ValidationError as exc:
        first = exc.errors()[0]
        loc = list(first["loc"])
        where = ".".join(str(p) for p in loc) or "file"
        section = loc[0] if loc else None
        if section in ("users", "technicians") and len(loc) >= 2 and isinstance(loc[1], int) and isinstance(raw, dict):
            entry = (raw.get(loc[0]) or [{}])[loc[1]]
            name = entry.get("username", f"#{loc[1]}") if isinstance(entry, dict) else f"#{loc[1]}"
            where = f"user {name}" + ("." + ".".join(str(p) for p in loc[2:]) if loc[2:] else "")
        raise SeedError(f"{path}: {where}: {first['msg'].removeprefix('Value error, ')}") from exc


def _check_production(entry: SeedUser, path: Path | str) -> None:
    if entry.password is None:
        return
    secret = entry.password.get_secret_value()
    if secret.lower() in PLACEHOLDER_SECRETS or len(secret) < MIN_PRODUCTION_PASSWORD:
        raise SeedError(f"{path}: user {entry.username}: refusing a placeholder or short password in production")


def load_seed(
    session: Session, path: Path | str, *, now: datetime | None = None, production: bool = False
) -> SeedSummary:
    """Create or update the users and technicians of the seed file. Never commits."""
    seed = read_seed(path)
    now = now or datetime.now(UTC)
    created = updated = 0
    for store_entry in seed.stores:
        _sync_store(session, store_entry.id, now, name=store_entry.name, region=store_entry.region)
    for entry in seed.everyone:
        if production:
            _check_production(entry, path)
        user = session.scalar(select(User).where(User.username == entry.username))
        if user is None:
            user = User(username=entry.username, created_at=now, password_hash="")
            session.add(user)
            created += 1
        else:
            updated += 1
        user.display_name, user.role, user.active = entry.display_name, entry.role, entry.active
        user.region = entry.region
        if entry.store is not None:
            _sync_store(session, entry.store, now)
        user.store_id = entry.store
        if entry.password_hash is not None:
            user.password_hash = entry.password_hash
        elif entry.password is not None and not verify_password(entry.password.get_secret_value(), user.password_hash):
            user.password_hash = hash_password(entry.password.get_secret_value())
        session.flush()
        _sync_technician(session, user, entry)
    return SeedSummary(created=created, updated=updated)


def _sync_store(session: Session, store_id: str, now: datetime, *, name: str | None = None,
                region: str | None = None) -> None:
    """Create the store if central has not heard of it yet; set its name and region when given."""
    store = session.get(Store, store_id)
    if store is None:
        store = Store(id=store_id, name=name or store_id, region=region or "", online=False, gateway_version="",
                      created_at=now)
        session.add(store)
    if name is not None:
        store.name = name
    if region is not None:
        store.region = region
    session.flush()


def _sync_technician(session: Session, user: User, entry: SeedUser) -> None:
    technician = session.scalar(select(Technician).where(Technician.user_id == user.id))
    if entry.role is Role.TECHNICIAN:
        if technician is None:
            technician = Technician(user_id=user.id)
            session.add(technician)
        technician.skills, technician.region, technician.active = list(entry.skills), entry.region, entry.active
    elif technician is not None:
        technician.active = False  # kept for the history of its tickets
