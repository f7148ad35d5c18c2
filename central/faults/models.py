"""The latest known state of each fault (faults domain: ORM model).

Fault events can reach central out of order (several workers on a shared subscription, a
redelivery after a failure, a store's backlog flushed after an outage). One row per
(store, device, fault code) remembers the newest event seen, by `occurred_at` then `seq`,
so an older event can be recognised as such whether or not a ticket exists yet.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKeyConstraint, String
from sqlalchemy.orm import Mapped, mapped_column

from central.db import Base, StrEnumType
from protocols.mqtt.messages import FaultState


class FaultStateRecord(Base):
    __tablename__ = "fault_states"
    __table_args__ = (
        ForeignKeyConstraint(
            ["store_id", "device_id"], ["devices.store_id", "devices.device_id"], ondelete="CASCADE"
        ),
    )

    store_id: Mapped[str] = mapped_column(String(63), primary_key=True)
    device_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    fault_code: Mapped[str] = mapped_column(String(128), primary_key=True)
    state: Mapped[FaultState] = mapped_column(StrEnumType(FaultState, 16))  # raised or cleared, never updated
    occurred_at: Mapped[datetime]  # of the newest event
    seq: Mapped[int]
    message_id: Mapped[str] = mapped_column(String(64))
    updated_at: Mapped[datetime]  # server time of the last change
