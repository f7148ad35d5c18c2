"""Rollout status of the desired store configurations (thresholds domain service: reads only).

Per store: the newest desired version central issued and what the store's newest ack says:
up to date (it runs that version), pending (not answered yet), failed (it rejected that
version, with the store's reason), or unconfigured (central never issued a version).
"""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from central.store_config.models import StoreConfigAck, StoreConfigVersion
from central.stores.models import Store
from central.thresholds.schemas import RolloutRead, RolloutState, RolloutStore
from protocols.mqtt.messages import ConfigResult


def state_of(desired: StoreConfigVersion | None, ack: StoreConfigAck | None) -> RolloutState:
    if desired is None:
        return RolloutState.UNCONFIGURED
    if ack is not None and ack.active_version == desired.version:
        return RolloutState.UP_TO_DATE
    if ack is not None and ack.version == desired.version and ack.result is ConfigResult.REJECTED:
        return RolloutState.FAILED
    return RolloutState.PENDING


def rollout(*, session: Session, region: str | None = None, state: RolloutState | None = None) -> RolloutRead:
    """Every store (of `region`), with counts per state before the `state` filter."""
    newest = (select(StoreConfigVersion.store_id, func.max(StoreConfigVersion.version).label("version"))
              .group_by(StoreConfigVersion.store_id).subquery())
    query = (select(Store, StoreConfigVersion, StoreConfigAck)
             .outerjoin(newest, newest.c.store_id == Store.id)
             .outerjoin(StoreConfigVersion, (StoreConfigVersion.store_id == Store.id)
                        & (StoreConfigVersion.version == newest.c.version))
             .outerjoin(StoreConfigAck, StoreConfigAck.store_id == Store.id)
             .order_by(Store.id))
    if region is not None:
        query = query.where(Store.region == region)
    counts = dict.fromkeys(RolloutState, 0)
    stores = []
    for store, desired, ack in session.execute(query):
        current = state_of(desired, ack)
        counts[current] += 1
        if state is not None and current is not state:
            continue
        stores.append(RolloutStore(
            store_id=store.id, name=store.name, region=store.region, state=current,
            desired_version=desired.version if desired else None, desired_hash=desired.hash if desired else None,
            issued_at=desired.issued_at if desired else None,
            applied_version=ack.active_version if ack else None, last_result=ack.result.value if ack else None,
            error=ack.error if ack is not None and current is RolloutState.FAILED else None,
            acked_at=ack.applied_at if ack else None))
    return RolloutRead(counts=counts, stores=stores)
