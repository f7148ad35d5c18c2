"""The HACCP temperature log of a refrigerated device (telemetry domain, HTTP, read-only)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated, Literal

from fastapi import APIRouter, Query, Response

from central.auth.models import User
from central.auth.permissions import Permission, check, check_store
from central.deps import CurrentUser, RuntimeDep, SessionDep
from central.telemetry import service
from central.telemetry.models import TemperatureLog

router = APIRouter(tags=["telemetry"])

DEFAULT_SPAN = timedelta(hours=24)


def authorize(user: User, store_id: str) -> None:
    """Office roles read every store's log; store staff their own store's; technicians none."""
    check(user, Permission.TELEMETRY_READ)
    check_store(user, store_id)


@router.get("/stores/{store_id}/devices/{device_id}/temperature-log", response_model=TemperatureLog,
            responses={200: {"content": {"text/csv": {}}}})
def temperature_log(
    store_id: str, device_id: str, session: SessionDep, runtime: RuntimeDep, user: CurrentUser,
    from_: Annotated[datetime | None, Query(alias="from", description="start, ISO 8601 with zone (default: to - 24 h)")] = None,
    to: Annotated[datetime | None, Query(description="end, exclusive, ISO 8601 with zone (default: now)")] = None,
    format: Annotated[Literal["json", "csv"], Query()] = "json",  # noqa: A002 - the public parameter name
) -> TemperatureLog | Response:
    authorize(user, store_id)
    now = runtime.clock.now()
    end = to or now
    start = from_ or end - DEFAULT_SPAN
    log = service.temperature_log(session=session, store_id=store_id, device_id=device_id, start=start, end=end,
                                  now=now, profiles=runtime.profiles, interval_s=runtime.settings.haccp_interval_s)
    if format == "json":
        return log
    name = f"temperature-log-{store_id}-{device_id}-{log.from_:%Y%m%dT%H%MZ}.csv"
    return Response(service.log_csv(log), media_type="text/csv; charset=utf-8",
                    headers={"Content-Disposition": f'attachment; filename="{name}"'})
