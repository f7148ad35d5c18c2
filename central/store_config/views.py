"""Store configuration API (store_config domain, HTTP): thin routes, the request owns the transaction.

    GET /stores/{store_id}/config   the desired version, its overrides, the store's last ack, in sync?
    PUT /stores/{store_id}/config   facilities and admins: the store's full device-scope override
                                    set (central.thresholds) -> a new version (201), or the current
                                    one when the compiled set is identical (200)
"""

from __future__ import annotations

from fastapi import APIRouter, Response

from central.auth.models import Role
from central.auth.permissions import check_store
from central.deps import CurrentUser, RuntimeDep, SessionDep
from central.errors import PermissionDeniedError
from central.store_config import service
from central.store_config.models import StoreConfigAck, StoreConfigVersion
from central.store_config.schemas import AckRead, ConfigBody, DesiredRead, StoreConfigRead
from central.stores import service as stores
from central.thresholds import service as thresholds

router = APIRouter(tags=["store configuration"])
MAY_CONFIGURE = (Role.FACILITIES, Role.ADMIN)


def _read(store_id: str, desired: StoreConfigVersion | None, ack: StoreConfigAck | None,
          created: bool = False) -> StoreConfigRead:
    applied = ack.active_version if ack is not None else None
    return StoreConfigRead(
        store_id=store_id,
        desired=DesiredRead(version=desired.version, hash=desired.hash, issued_by=desired.issued_by,
                            issued_at=desired.issued_at, devices=desired.devices) if desired else None,
        applied_version=applied,
        last_ack=AckRead(version=ack.version, hash=ack.hash, result=ack.result, error=ack.error,
                         active_version=ack.active_version, applied_at=ack.applied_at,
                         received_at=ack.received_at) if ack else None,
        in_sync=applied == (desired.version if desired is not None else None),
        created=created,
    )


@router.get("/stores/{store_id}/config", response_model=StoreConfigRead)
def get_config(store_id: str, session: SessionDep, user: CurrentUser) -> StoreConfigRead:
    check_store(user, store_id)
    stores.get_store(session=session, store_id=store_id)
    return _read(store_id, service.current(session=session, store_id=store_id),
                 service.last_ack(session=session, store_id=store_id))


@router.put("/stores/{store_id}/config", response_model=StoreConfigRead)
def put_config(store_id: str, body: ConfigBody, response: Response, session: SessionDep, runtime: RuntimeDep,
               user: CurrentUser) -> StoreConfigRead:
    if user.role not in MAY_CONFIGURE:
        raise PermissionDeniedError("only facilities staff and admins change store configuration")
    reason = body.reason or f"PUT /stores/{store_id}/config"
    version, created = thresholds.put_store(session=session, store_id=store_id, devices=body.devices,
                                            author=user.username, reason=reason, now=runtime.clock.now(),
                                            profiles=runtime.profiles)
    session.commit()
    response.status_code = 201 if created else 200
    return _read(store_id, version, service.last_ack(session=session, store_id=store_id), created)
