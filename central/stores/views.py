"""Stores and devices (stores domain, HTTP, read-only)."""

from __future__ import annotations

from fastapi import APIRouter

from central.deps import CurrentUser, SessionDep
from central.stores import service
from central.stores.models import Device, DevicePoint, DeviceRead, PointRead, StoreDetail, StoreRead

router = APIRouter(tags=["stores"])


def _device(device: Device, values: dict[tuple[str, str], list[DevicePoint]]) -> DeviceRead:
    read = DeviceRead.model_validate(device)
    read.values = [PointRead.model_validate(p) for p in values.get((device.store_id, device.device_id), [])]
    return read


@router.get("/stores", response_model=list[StoreRead])
def list_stores(session: SessionDep, _user: CurrentUser) -> list[StoreRead]:
    counts = service.open_ticket_counts(session=session)
    return [StoreRead.model_validate(s).model_copy(update={"open_tickets": counts.get(s.id, 0)})
            for s in service.list_stores(session=session)]


@router.get("/stores/{store_id}", response_model=StoreDetail)
def get_store(store_id: str, session: SessionDep, _user: CurrentUser) -> StoreDetail:
    store = service.get_store(session=session, store_id=store_id)
    values = service.point_values(session=session, store_id=store_id)
    devices = [_device(d, values) for d in service.list_devices(session=session, store_id=store_id)]
    base = StoreRead.model_validate(store).model_dump()
    base["open_tickets"] = service.open_ticket_counts(session=session).get(store_id, 0)
    return StoreDetail(**base, devices=devices)


@router.get("/devices", response_model=list[DeviceRead])
def list_devices(session: SessionDep, _user: CurrentUser, store_id: str | None = None) -> list[DeviceRead]:
    values = service.point_values(session=session, store_id=store_id)
    return [_device(d, values) for d in service.list_devices(session=session, store_id=store_id)]
