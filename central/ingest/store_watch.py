"""A store whose gateway has gone silent (ingest layer): an incident of its own, as a fault.

The broker publishes the gateway's last will (a retained StoreHealth, online=false) when the
store drops off. Central then waits `store_offline_grace` (a durable timer: a gateway that
restarts or a link that blips does not open a ticket) and, if the store is still offline,
raises the fault `store_offline` on the store's pseudo-device `gateway`, through the same
path as a device's fault: one ticket, dispatched (skill `controls`), under an SLA. When the
store is back (a StoreHealth online=true) the fault clears; the recovery grace then resolves
the ticket if nobody has accepted it yet. Device faults that happened while the store was
away (its outbox replays them on return) become children of the incident
(`central.tickets.links`).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from central.faults.models import FaultStateRecord
from central.stores.models import Store
from central.tickets.policy import Lifecycle
from central.timers import service as timers
from central.timers.models import Timer
from central.timers.service import TimerRegistry
from device_profiles import ProfileRegistry
from protocols.mqtt.messages import FaultClass, FaultEvent, FaultState, Severity, StoreHealth, TicketClass

OFFLINE_KIND = "store.offline"
DEVICE, MODEL, CODE = "gateway", "gateway", "store_offline"
_NO_PROFILES = ProfileRegistry({})  # the gateway is no profiled device
# `central.ingest.flows.apply_fault`, passed in (flows calls this module; no import cycle)
ApplyFault = Callable[..., object]


def _key(store_id: str) -> str:
    return f"store:{store_id}:offline"


def on_health(*, session: Session, health: StoreHealth, now: datetime, lifecycle: Lifecycle,
              apply_fault: ApplyFault) -> None:
    """After a StoreHealth was applied: start the offline wait, or end an outage."""
    if not health.online:
        timers.schedule(session=session, key=_key(health.store_id), kind=OFFLINE_KIND, due_at=now + lifecycle.store_offline_grace, now=now,
                        data={"store_id": health.store_id, "since": now.isoformat()})
        return
    timers.cancel(session=session, keys=[_key(health.store_id)])
    state = session.scalar(select(FaultStateRecord).where(
        FaultStateRecord.store_id == health.store_id, FaultStateRecord.device_id == DEVICE,
        FaultStateRecord.fault_code == CODE))
    if state is not None and state.state is FaultState.RAISED:
        apply_fault(session=session, fault=_event(health.store_id, FaultState.CLEARED, now, {}), now=now,
                    profiles=_NO_PROFILES, lifecycle=lifecycle)


def _event(store_id: str, state: FaultState, at: datetime, evidence: dict[str, str | int | float | bool | None],
           description: str = "") -> FaultEvent:
    return FaultEvent(
        message_id=f"central-{CODE}-{state.value}-{int(at.timestamp() * 1000)}"[:64], store_id=store_id, sent_at=at,
        seq=0, device_id=DEVICE, device_model=MODEL, fault_code=CODE, state=state, severity=Severity.MAJOR,
        fault_class=FaultClass.EQUIPMENT, ticket_class=TicketClass.REPAIR, occurred_at=at, description=description,
        evidence=evidence)


def register_timers(registry: TimerRegistry, *, lifecycle: Lifecycle, apply_fault: ApplyFault) -> None:
    def on_offline(session: Session, timer: Timer, now: datetime) -> None:
        store_id = str(timer.data["store_id"])
        store = session.get(Store, store_id, with_for_update=True, populate_existing=True)
        if store is None or store.online:
            return  # back meanwhile
        since = datetime.fromisoformat(str(timer.data["since"]))
        minutes = round((now - since).total_seconds() / 60)
        fault = _event(store_id, FaultState.RAISED, since, {"offline_since": since.isoformat(),
                                                            "offline_min": minutes},
                       description=f"Store gateway offline: no contact for {minutes} min")
        apply_fault(session=session, fault=fault, now=now, profiles=_NO_PROFILES, lifecycle=lifecycle)

    registry.register(OFFLINE_KIND, on_offline)
