"""MQTT topics of contract v1 (protocols layer).

    storeguard/v1/<store_id>/fault          store -> central  FaultEvent        QoS 1
    storeguard/v1/<store_id>/telemetry      store -> central  TelemetryBatch    QoS 1
    storeguard/v1/<store_id>/health         store -> central  StoreHealth       QoS 1, retained, last will
    storeguard/v1/<store_id>/ticket-status  central -> store  TicketStatus      QoS 1
    storeguard/v1/<store_id>/config         central -> store  DesiredConfig     QoS 1, retained
    storeguard/v1/<store_id>/config-ack     store -> central  ConfigAck         QoS 1 (from the outbox)
"""

from __future__ import annotations

import re
from enum import StrEnum

PREFIX = "storeguard/v1"
STORE_ID_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,62}$"
_STORE_ID = re.compile(STORE_ID_PATTERN)


class TopicKind(StrEnum):
    FAULT = "fault"
    TELEMETRY = "telemetry"
    HEALTH = "health"
    TICKET_STATUS = "ticket-status"
    CONFIG = "config"
    CONFIG_ACK = "config-ack"


UPLINK_KINDS = (TopicKind.FAULT, TopicKind.TELEMETRY, TopicKind.HEALTH, TopicKind.CONFIG_ACK)
# The broker keeps the last message of these for late subscribers: the store's health, and the
# desired config, so a store that was offline gets the latest version when it subscribes again.
RETAINED_KINDS = frozenset({TopicKind.HEALTH, TopicKind.CONFIG})


class TopicError(ValueError):
    """A topic is not one of contract v1's."""


def valid_store_id(store_id: str) -> bool:
    return bool(_STORE_ID.match(store_id))


def topic(store_id: str, kind: TopicKind) -> str:
    if not valid_store_id(store_id):
        raise TopicError(f"store id {store_id!r} must match {STORE_ID_PATTERN}")
    return f"{PREFIX}/{store_id}/{kind.value}"


def parse_topic(value: str) -> tuple[str, TopicKind]:
    """Return (store_id, kind) of a v1 topic, or raise TopicError saying why not."""
    parts = value.split("/")
    if len(parts) != 4 or f"{parts[0]}/{parts[1]}" != PREFIX:
        raise TopicError(f"topic {value!r} is not storeguard/v1/<store>/<kind>")
    store_id, kind = parts[2], parts[3]
    if not valid_store_id(store_id):
        raise TopicError(f"topic {value!r} has an invalid store id")
    try:
        return store_id, TopicKind(kind)
    except ValueError:
        raise TopicError(f"topic {value!r} has unknown kind {kind!r}") from None


def subscription(kind: TopicKind, share_group: str | None = None) -> str:
    """Central's wildcard subscription for `kind`, as a shared subscription when a group is given."""
    base = f"{PREFIX}/+/{kind.value}"
    return f"$share/{share_group}/{base}" if share_group else base


def is_retained(value: str) -> bool:
    """Whether messages on this topic are published retained (False for a topic of no v1 kind)."""
    try:
        return parse_topic(value)[1] in RETAINED_KINDS
    except TopicError:
        return False
