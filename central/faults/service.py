"""Ordering fault events (faults domain service). Never commits.

`record_event` is called for every fault event in the ingest transaction. It keeps the
newest event per (store, device, fault code) and says whether this event is that newest
one; the caller applies an older event to history only. Messages of one store are already
serialised by the store row lock; the row lock here keeps that true for this table alone.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from central.db import upsert
from central.faults.models import FaultStateRecord
from protocols.mqtt.messages import FaultEvent, FaultState


@dataclass(frozen=True, slots=True)
class KnownState:
    """The newest fault event central has seen for one fault."""

    state: FaultState  # RAISED or CLEARED
    occurred_at: datetime
    seq: int
    message_id: str


@dataclass(frozen=True, slots=True)
class Ordering:
    in_order: bool  # newer than everything recorded before: the event sets the fault's state
    latest: KnownState  # the recorded state after this event (the event itself when in order)


def phase_of(state: FaultState) -> FaultState:
    """An update is news about an active fault: for ordering it counts as a raise."""
    return FaultState.CLEARED if state is FaultState.CLEARED else FaultState.RAISED


def _known(fault: FaultEvent) -> KnownState:
    return KnownState(phase_of(fault.state), fault.occurred_at, fault.seq, fault.message_id)


def _locked(session: Session, fault: FaultEvent) -> FaultStateRecord | None:
    return session.scalar(
        select(FaultStateRecord)
        .where(FaultStateRecord.store_id == fault.store_id, FaultStateRecord.device_id == fault.device_id,
               FaultStateRecord.fault_code == fault.fault_code)
        .with_for_update()
        .execution_options(populate_existing=True)
    )


def is_newer(fault: FaultEvent, known: KnownState) -> bool:
    """Later `occurred_at` wins; on a tie the higher store `seq`. An equal event is not newer."""
    return (fault.occurred_at, fault.seq) > (known.occurred_at, known.seq)


def record_event(*, session: Session, fault: FaultEvent, now: datetime) -> Ordering:
    """Record `fault` as the fault's state if it is the newest event seen; say which it was."""
    row = _locked(session, fault)
    if row is None:
        table = FaultStateRecord.__table__
        inserted = session.execute(
            upsert(session, table)
            .values(store_id=fault.store_id, device_id=fault.device_id, fault_code=fault.fault_code,
                    state=phase_of(fault.state), occurred_at=fault.occurred_at, seq=fault.seq,
                    message_id=fault.message_id, updated_at=now)
            .on_conflict_do_nothing(index_elements=["store_id", "device_id", "fault_code"])
            .returning(table.c.store_id)
        ).first()
        if inserted is not None:
            return Ordering(True, _known(fault))
        row = _locked(session, fault)  # another transaction inserted it first and has committed
        if row is None:
            raise RuntimeError(f"fault state of {fault.device_id}/{fault.fault_code} vanished while ingesting")
    known = KnownState(row.state, row.occurred_at, row.seq, row.message_id)
    if not is_newer(fault, known):
        return Ordering(False, known)
    row.state, row.occurred_at, row.seq = phase_of(fault.state), fault.occurred_at, fault.seq
    row.message_id, row.updated_at = fault.message_id, now
    return Ordering(True, _known(fault))
