"""HTTP bodies of the users administration API (auth domain, schemas).

Shape rules (patterns, lengths, the role enum) are checked here and answered with FastAPI's
422. Rules that need the database or the user's current state (unique username, an existing
store, the password rules, store_id only for store staff) are `central.auth.service`'s, so a
create and a patch obey the same code. Passwords are `SecretStr`: a logged or printed body
shows `**********`, and no response model has a password field.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Self

from pydantic import BaseModel, ConfigDict, Field, SecretStr, StringConstraints, model_validator

from central.auth.models import Role

USERNAME_PATTERN = r"^[a-z0-9][a-z0-9_.-]{0,63}$"  # the seed file's rule (central.seed.SeedUser)
STORE_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$"  # a store id of the MQTT topics

Username = Annotated[str, Field(pattern=USERNAME_PATTERN, description="1-64 of a-z 0-9 _ . - (first: a-z 0-9)")]
DisplayName = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100)]
Region = Annotated[str, StringConstraints(strip_whitespace=True, max_length=64)]
StoreId = Annotated[str, Field(pattern=STORE_ID_PATTERN)]
Password = Annotated[SecretStr, Field(description="at least 12 characters, not the username",
                                      json_schema_extra={"format": "password"})]


class UserDetail(BaseModel):
    """A user as an admin sees them (never the password hash)."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    username: str
    display_name: str
    role: Role
    region: str
    store_id: str | None
    active: bool
    created_at: datetime


class UserPage(BaseModel):
    total: int
    items: list[UserDetail]


class UserCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    username: Username
    display_name: DisplayName
    role: Role
    password: Password
    region: Region = ""
    store_id: StoreId | None = Field(default=None, description="store_staff only, and required for them")


class UserUpdate(BaseModel):
    """Only the fields sent change; `store_id: null` clears the store."""

    model_config = ConfigDict(extra="forbid")

    display_name: DisplayName | None = None
    role: Role | None = None
    region: Region | None = None
    store_id: StoreId | None = None
    active: bool | None = None

    @model_validator(mode="after")
    def _no_null_but_store(self) -> Self:
        nulls = sorted(f for f in self.model_fields_set - {"store_id"} if getattr(self, f) is None)
        if nulls:
            raise ValueError(f"{', '.join(nulls)} may not be null (leave a field out to keep it)")
        return self


class PasswordSet(BaseModel):
    """An admin sets a user's password."""

    model_config = ConfigDict(extra="forbid")

    password: Password


class PasswordChange(BaseModel):
    """A user changes their own password."""

    model_config = ConfigDict(extra="forbid")

    current_password: SecretStr
    new_password: Password
