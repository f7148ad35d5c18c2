"""Stores and devices (stores domain, HTTP, read-only)."""

from __future__ import annotations

from fastapi import APIRouter

from central.auth.permissions import Permission, check, check_store, store_scope
from central.deps import CurrentUser, SessionDep
from central.stores import service
from central.stores.models import Device, DevicePoint, DeviceRead, PointRead, StoreDetail, StoreRead

router = APIRouter(tags=["stores"])


def _device(device: Device, values: dict[tuple[str, str], list[DevicePoint]]) -> DeviceRead:
    read = DeviceRead.model_validate(device)
    read.values = [PointRead.model_validate(p) for p in values.get((device.store_id, device.device_id), [])]
    return read


@router.get("/stores", response_model=list[StoreRead])
def list_stores(session: SessionDep, user: CurrentUser) -> list[StoreRead]:
    """Every store; store staff get their own only (technicians: none of this list)."""
    _may_read_stores(user)
    scope = store_scope(user)
    counts = service.open_ticket_counts(session=session)
    return [StoreRead.model_validate(s).model_copy(update={"open_tickets": counts.get(s.id, 0)})
            for s in service.list_stores(session=session) if scope is None or s.id == scope]


def _may_read_stores(user: CurrentUser) -> None:
    if store_scope(user) is None:
        check(user, Permission.STORES_READ_ALL)


@router.get("/stores/{store_id}", response_model=StoreDetail)
def get_store(store_id: str, session: SessionDep, user: CurrentUser) -> StoreDetail:
    _may_read_stores(user)
    check_store(user, store_id)
    store = service.get_store(session=session, store_id=store_id)
    values = service.point_values(session=session, store_id=store_id)
    devices = [_device(d, values) for d in service.list_devices(session=session, store_id=store_id)]
    base = StoreRead.model_validate(store).model_dump()
    base["open_tickets"] = service.open_ticket_counts(session=session).get(store_id, 0)
    return StoreDetail(**base, devices=devices)


@router.get("/devices", response_model=list[DeviceRead])
def list_devices(session: SessionDep, user: CurrentUser, store_id: str | None = None) -> list[DeviceRead]:
    _may_read_stores(user)
    scope = store_scope(user)
    if scope is not None:
        if store_id is not None:
            check_store(user, store_id)
        store_id = scope
    values = service.point_values(session=session, store_id=store_id)
    return [_device(d, values) for d in service.list_devices(session=session, store_id=store_id)]
