"""Central's composition root (application layer): `create_app(settings)` and `run(settings)`.

The lifespan migrates (when `auto_migrate`), seeds (when `seed_file`), then starts the MQTT
status publisher and the ingest consumer; on shutdown it stops ingest first (finishing the
queued messages), then the publisher, then closes the database.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from datetime import timedelta
from contextlib import asynccontextmanager
from pathlib import Path

import anyio
import uvicorn
from sqlalchemy import text
from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import JSONResponse
from fastapi.staticfiles import StaticFiles

from central.auth.views import InvalidLoginRequest
from central.auth.views import router as auth_router
from central.clock import Clock, SystemClock
from central.db import Database, migrate
from central.errors import (
    CentralError,
    ConflictError,
    NotAuthenticatedError,
    NotFoundError,
    PermissionDeniedError,
    VersionConflictError,
)
from central.ingest.consumer import MqttConsumer
from central.ingest.processor import Ingestor
from central.ingest import store_watch
from central.ingest.flows import apply_fault
from central.ingest.worker import InboxWorker
from central.tickets import timers as ticket_timers
from central.tickets.templates import router as work_templates_router
from central.tickets.policy import Lifecycle
from central.metrics import Metrics
from central.notify import service as notify_service
from central.notify.channels import build_notifiers
from central.notify.loop import NotifyLoop
from central.outbox import service as outbox
from central.publisher import StatusPublisher
from central.runtime import Runtime
from central.seed import load_seed
from central.settings import CentralSettings, Environment
from central.store_config.service import InvalidConfigError
from central.store_config.views import router as store_config_router
from central.stores.views import router as stores_router
from central.system_views import router as system_router
from central.technicians.views import router as technicians_router
from central.thresholds.views import router as thresholds_router
from central.tickets.views import router as tickets_router
from central.sla import escalation as sla_escalation
from central.sla.views import router as sla_router
from central.timers.loop import TimerLoop
from central.timers import service as timers_service
from central.timers.service import TimerRegistry
from central.ingest.views import router as ingest_router
from central.maintenance import MaintenanceLoop, Retention
from central.telemetry.service import InvalidRangeError
from central.telemetry.views import router as telemetry_router
from device_profiles import ProfileRegistry

log = logging.getLogger(__name__)
STATIC_DIR = Path(__file__).parent / "static"
API_PREFIX = "/api/v1"
NOTIFY_BATCH = 10  # notifications claimed per transaction by the notify loop
SEED_LOCK_KEY = 0x5347_5345  # "SGSE": one central worker loads the seed file at a time (PostgreSQL)

_HTTP_STATUS: tuple[tuple[type[CentralError], int], ...] = (
    (NotFoundError, 404),
    (NotAuthenticatedError, 401),
    (PermissionDeniedError, 403),
    (ConflictError, 409),
    (VersionConflictError, 409),
    (InvalidConfigError, 422),
    (InvalidRangeError, 422),
    (InvalidLoginRequest, 422),
)


async def _central_error(_request: Request, exc: Exception) -> JSONResponse:
    """The one place domain errors become HTTP responses."""
    assert isinstance(exc, CentralError)
    status = next((code for cls, code in _HTTP_STATUS if isinstance(exc, cls)), 400)
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    body = {"detail": exc.message, "code": exc.code, **getattr(exc, "details", {})}  # e.g. invalid_config's problem
    return JSONResponse(body, status_code=status, headers=headers)


def _start(runtime: Runtime) -> None:
    settings = runtime.settings
    if settings.auto_migrate:
        migrate(settings.database_url)
    if settings.seed_file is not None:
        with runtime.database.session() as session, session.begin():
            if runtime.database.dialect == "postgresql":  # workers starting together seed one at a time
                session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": SEED_LOCK_KEY})
            summary = load_seed(session, settings.seed_file, now=runtime.clock.now(),
                                production=settings.environment is Environment.PRODUCTION)
        log.info("seeded %d new and %d existing users from %s", summary.created, summary.updated, settings.seed_file)
    if settings.timers_enabled:
        runtime.timers = TimerLoop(database=runtime.database, registry=runtime.timer_registry, clock=runtime.clock,
                                   metrics=runtime.metrics, interval_s=settings.timer_interval_s)
        runtime.timers.start()
    if settings.notify_enabled and settings.notify_channels:
        notifiers = build_notifiers(settings, clock=runtime.clock)
        # a claimed batch is delivered one by one: its lease covers every delivery timing out
        lease_s = max(60.0, NOTIFY_BATCH * 2 * settings.notify_webhook_timeout_s + 30.0)
        runtime.notifier = NotifyLoop(database=runtime.database, notifiers=notifiers, clock=runtime.clock,
                                      interval_s=settings.notify_poll_s, batch_size=NOTIFY_BATCH, lease_s=lease_s)
        runtime.notifier.start()
    if settings.maintenance_enabled:
        runtime.maintenance = MaintenanceLoop(database=runtime.database, retention=Retention.from_settings(settings),
                                              clock=runtime.clock, interval_s=settings.maintenance_interval_s)
        runtime.maintenance.start()
    if settings.mqtt_enabled:
        runtime.publisher = StatusPublisher(settings=settings, database=runtime.database, metrics=runtime.metrics,
                                            clock=runtime.clock)
        runtime.publisher.start()
        # the inbox worker first: it applies what an earlier run (or a crashed worker) stored
        runtime.inbox = InboxWorker(ingestor=runtime.ingestor, metrics=runtime.metrics, poll_s=settings.ingest_poll_s,
                                    batch_size=settings.ingest_batch_size,
                                    batch_budget_s=settings.ingest_batch_budget_s)
        runtime.inbox.start()
        runtime.consumer = MqttConsumer(settings=settings, store=runtime.ingestor, dead_letters=runtime.ingestor,
                                        metrics=runtime.metrics, clock=runtime.clock, on_stored=runtime.inbox.wake)
        runtime.consumer.start()


def _stop(runtime: Runtime) -> None:
    if runtime.consumer is not None:
        runtime.consumer.stop()
        runtime.consumer = None
    if runtime.inbox is not None:
        runtime.inbox.stop()
        runtime.inbox = None
    if runtime.timers is not None:
        runtime.timers.stop()
        runtime.timers = None
    if runtime.maintenance is not None:
        runtime.maintenance.stop()
        runtime.maintenance = None
    if runtime.publisher is not None:
        runtime.publisher.stop()
        runtime.publisher = None
    if runtime.notifier is not None:  # after everything that may enqueue a notification
        runtime.notifier.stop()
        runtime.notifier = None
    runtime.database.dispose()


def _counter(database: Database, count: Callable[..., int]) -> Callable[[], float]:
    """A gauge's reading: `count(session=...)` in a short session of its own."""

    def read() -> float:
        with database.session() as session:
            return count(session=session)

    return read


def lifecycle_of(settings: CentralSettings) -> Lifecycle:
    return Lifecycle(recovery_grace=timedelta(seconds=settings.recovery_grace_s),
                     reopen_window=timedelta(seconds=settings.reopen_window_s),
                     correlation_window=timedelta(seconds=settings.correlation_window_s),
                     correlation_min_devices=settings.correlation_min_devices,
                     store_offline_grace=timedelta(seconds=settings.store_offline_grace_s))


def timer_registry(lifecycle: Lifecycle | None = None) -> TimerRegistry:
    """Every timer kind central fires, with its handler (each domain registers its own)."""
    registry = TimerRegistry()
    sla_escalation.register_timers(registry)
    ticket_timers.register_timers(registry)
    store_watch.register_timers(registry, lifecycle=lifecycle or Lifecycle(), apply_fault=apply_fault)
    return registry


def create_app(settings: CentralSettings, *, clock: Clock | None = None) -> FastAPI:
    """The central FastAPI application; nothing connects until its lifespan starts."""
    clock = clock or SystemClock()
    database = Database(settings.database_url)
    metrics = Metrics()
    profiles = ProfileRegistry.load(list(settings.profile_dirs))
    lifecycle = lifecycle_of(settings)
    runtime = Runtime(settings=settings, clock=clock, database=database, metrics=metrics, profiles=profiles,
                      ingestor=Ingestor(database=database, profiles=profiles, metrics=metrics, clock=clock,
                                        haccp_interval_s=settings.haccp_interval_s,
                                        max_attempts=settings.ingest_max_attempts,
                                        retry_delay_s=settings.ingest_retry_delay_s,
                                        lifecycle=lifecycle),
                      timer_registry=timer_registry(lifecycle))
    database.on_outbox_commit(lambda: runtime.publisher.wake() if runtime.publisher else None)
    notify_service.configure(database, channels=settings.notify_channels if settings.notify_enabled else ())
    notify_service.on_commit(database, lambda: runtime.notifier.wake() if runtime.notifier else None)
    metrics.gauge("storeguard_central_ingest_queue_depth", "messages waiting for the ingest worker",
                  lambda: runtime.consumer.queue_depth() if runtime.consumer else 0)
    metrics.gauge("storeguard_central_inbound_pending", "MQTT messages stored but not applied yet (all workers)",
                  lambda: runtime.ingestor.pending())
    metrics.gauge("storeguard_central_outbox_pending", "ticket status messages not yet acknowledged by the broker",
                  _counter(database, outbox.count_pending))
    metrics.gauge("storeguard_central_timers_pending", "timers waiting for their deadline (parked ones excluded)",
                  _counter(database, timers_service.count_pending))
    metrics.gauge("storeguard_central_notifications_pending", "notifications not yet delivered (all channels)",
                  _counter(database, notify_service.count_pending))
    metrics.gauge("storeguard_central_notifications_failed", "notifications given up after the last retry",
                  _counter(database, notify_service.count_failed))
    metrics.gauge("storeguard_central_mqtt_connected", "1 when both MQTT connections are up",
                  lambda: float(bool(runtime.consumer and runtime.consumer.connected
                                     and runtime.publisher and runtime.publisher.connected)))

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        await anyio.to_thread.run_sync(_start, runtime)
        try:
            yield
        finally:
            await anyio.to_thread.run_sync(_stop, runtime)

    app = FastAPI(title="StoreGuard central", version="1", lifespan=lifespan,
                  description="Device faults in, repair tickets out: ingest, dispatch, technicians' handheld API.")
    app.state.runtime = runtime
    app.add_exception_handler(CentralError, _central_error)
    api = APIRouter(prefix=API_PREFIX)
    for router in (auth_router, stores_router, store_config_router, technicians_router, tickets_router,
                   ingest_router, telemetry_router, sla_router, thresholds_router, work_templates_router):
        api.include_router(router)
    app.include_router(api)
    app.include_router(system_router)
    app.mount("/app", StaticFiles(directory=STATIC_DIR, html=True), name="handheld")
    return app


def run(settings: CentralSettings) -> None:
    """Serve central with uvicorn until interrupted (the CLI calls this)."""
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    uvicorn.run(create_app(settings), host=settings.http_host, port=settings.http_port, log_level="info")
