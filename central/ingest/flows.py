"""Applying one store message (ingest domain, cross-domain flow). Never commits.

The caller owns the transaction: the ledger row, the store/device upserts, the ticket
change and the outbound status commit together or not at all.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from sqlalchemy.orm import Session

from central.db import upsert
from central.ingest.models import InboundMessage
from central.stores import service as stores
from central.tickets import policy
from central.tickets import service as tickets
from device_profiles import ProfileRegistry
from protocols.mqtt.messages import FaultEvent, FaultState, Message, StoreHealth, TelemetryBatch, TicketClass


class Outcome(StrEnum):
    ACCEPTED = "accepted"
    DUPLICATE = "duplicate"
    REJECTED = "rejected"


@dataclass(frozen=True, slots=True)
class Applied:
    outcome: Outcome
    kind: str
    created_ticket_id: int | None = None
    ticket_class: TicketClass | None = None


def kind_of(profiles: ProfileRegistry, device_model: str) -> str | None:
    """The profile kind of a device model (None for a model central has no profile of)."""
    return profiles.get(device_model).kind if device_model in profiles else None


def record_inbound(*, session: Session, message: Message, kind: str, now: datetime) -> bool:
    """Insert the ledger row; False when this message_id was applied before (or is being applied now)."""
    seq = getattr(message, "seq", None)
    stmt = upsert(session, InboundMessage.__table__).values(
        message_id=message.message_id, store_id=message.store_id, kind=kind, seq=seq, received_at=now
    )
    inserted = session.execute(
        stmt.on_conflict_do_nothing(index_elements=["message_id"]).returning(InboundMessage.__table__.c.id)
    ).first()
    return inserted is not None


def apply_message(*, session: Session, message: Message, now: datetime, profiles: ProfileRegistry) -> Applied:
    kind = str(getattr(message, "kind", "unknown"))
    if not record_inbound(session=session, message=message, kind=kind, now=now):
        return Applied(Outcome.DUPLICATE, kind)
    stores.touch_store(session=session, store_id=message.store_id, now=now)
    if isinstance(message, FaultEvent):
        return apply_fault(session=session, fault=message, now=now, profiles=profiles)
    if isinstance(message, TelemetryBatch):
        stores.apply_telemetry(session=session, batch=message, now=now)
    elif isinstance(message, StoreHealth):
        kinds = {d.device_model: kind_of(profiles, d.device_model) for d in message.devices}
        stores.apply_health(session=session, health=message, now=now, kinds=kinds)
    else:
        raise TypeError(f"central does not consume {type(message).__name__}")
    return Applied(Outcome.ACCEPTED, kind)


def apply_fault(*, session: Session, fault: FaultEvent, now: datetime, profiles: ProfileRegistry) -> Applied:
    device_kind = kind_of(profiles, fault.device_model)
    row = {"device_id": fault.device_id, "model": fault.device_model, "kind": device_kind,
           "location": fault.location, "last_seen": now}
    update = ["model", "kind", "last_seen"] + (["location"] if fault.location else [])
    stores.upsert_devices(session=session, store_id=fault.store_id, rows=[row], update=update)
    key = {"store_id": fault.store_id, "device_id": fault.device_id, "fault_code": fault.fault_code}

    if fault.state is FaultState.CLEARED:
        ticket = tickets.find_open(session=session, **key) or tickets.latest_with_active_fault(session=session, **key)
        if ticket is not None:
            tickets.fault_cleared(session=session, ticket=ticket, fault=fault, now=now)
        return Applied(Outcome.ACCEPTED, fault.kind)

    skill = policy.skill_for_kind(device_kind)
    ticket, created = tickets.open_for_fault(session=session, fault=fault, skill=skill, now=now)
    if not created:
        tickets.fault_again(session=session, ticket=ticket, fault=fault, now=now)
        return Applied(Outcome.ACCEPTED, fault.kind)
    if ticket.ticket_class is TicketClass.REPAIR:
        tickets.auto_assign(session=session, ticket=ticket, now=now)
    return Applied(Outcome.ACCEPTED, fault.kind, created_ticket_id=ticket.id, ticket_class=ticket.ticket_class)
