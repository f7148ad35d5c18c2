"""Health and metrics endpoints (operations, HTTP). Unauthenticated: no data, only state."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse, PlainTextResponse
from sqlalchemy.exc import SQLAlchemyError

from central.deps import RuntimeDep

router = APIRouter(tags=["operations"])


def _state(component: object | None) -> str:
    if component is None:
        return "disabled"
    return "connected" if getattr(component, "connected", False) else "disconnected"


@router.get("/healthz")
def healthz(runtime: RuntimeDep) -> JSONResponse:
    try:
        runtime.database.ping()
        database = "ok"
    except SQLAlchemyError as exc:
        database = f"error: {type(exc).__name__}"
    mqtt = {"ingest": _state(runtime.consumer), "publisher": _state(runtime.publisher)}
    if not runtime.settings.mqtt_enabled:
        mqtt = {"ingest": "disabled", "publisher": "disabled"}
    healthy = database == "ok" and all(v in ("connected", "disabled") for v in mqtt.values())
    body = {"status": "ok" if healthy else "degraded", "database": database, "mqtt": mqtt}
    return JSONResponse(body, status_code=200 if database == "ok" else 503)


@router.get("/metrics", response_class=PlainTextResponse)
def metrics(runtime: RuntimeDep) -> PlainTextResponse:
    return PlainTextResponse(runtime.metrics.render(), media_type="text/plain; version=0.0.4")
