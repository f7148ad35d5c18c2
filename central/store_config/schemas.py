"""HTTP bodies and responses of the store configuration API (store_config domain: schemas)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field

from protocols.mqtt.messages import MAX_CONFIG_DEVICES, ConfigResult, DeviceOverrides


class ConfigBody(BaseModel):
    """The full override set of a store (not a delta): what is left out reverts to the profile."""

    model_config = ConfigDict(extra="forbid")

    devices: Annotated[DeviceOverrides, Field(max_length=MAX_CONFIG_DEVICES)]
    reason: Annotated[str, Field(max_length=500)] = ""  # kept in the threshold change history


class DesiredRead(BaseModel):
    version: int
    hash: str
    issued_by: str
    issued_at: datetime
    devices: dict[str, dict[str, dict[str, Any]]]


class AckRead(BaseModel):
    version: int
    hash: str
    result: ConfigResult
    error: dict[str, Any] | None
    active_version: int | None
    applied_at: datetime
    received_at: datetime


class StoreConfigRead(BaseModel):
    store_id: str
    desired: DesiredRead | None  # None: central never configured this store
    applied_version: int | None  # what the store last said it runs
    last_ack: AckRead | None
    in_sync: bool  # the store runs the desired version
    created: bool = False  # PUT only: a new version was made (False: identical to the current one)
