"""The `storeguard` command (composition layer): one sub-command per process.

    storeguard central    the dispatcher server (FastAPI + SQLAlchemy + MQTT ingest)
    storeguard store      one store: edge polling + gateway (outbox, MQTT, store page)
    storeguard simulate   simulated devices on Modbus TCP and RTU pseudo-terminals
    storeguard broker     the embedded MQTT broker (amqtt), for the demo and one store
    storeguard demo       all of the above on this machine; --check runs it headless
    storeguard migrate    apply central's database migrations
    storeguard profiles   validate device profile files
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import logging
import signal
import sys
from collections.abc import Coroutine
from pathlib import Path
from typing import Any

from storeguard import __version__


def configure_logging(level: str) -> None:
    logging.basicConfig(
        level=getattr(logging, level.upper(), logging.INFO),
        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
    )
    # Third-party chatter at INFO drowns what an operator needs to see.
    for noisy in ("amqtt", "transitions", "uvicorn.access", "aiohttp.access", "httpx", "httpcore"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def _run(coro: Coroutine[Any, Any, None]) -> int:
    """Run a long-lived command; SIGINT and SIGTERM cancel it so its cleanup runs.

    Handlers are installed explicitly: a process started in the background inherits SIGINT
    ignored, and Python's default SIGTERM skips every `finally`.
    """

    async def main() -> None:
        task = asyncio.current_task()
        assert task is not None
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, task.cancel)
        try:
            await coro
        except asyncio.CancelledError:
            logging.getLogger("storeguard").info("stopped")

    asyncio.run(main())
    return 0


def cmd_central(args: argparse.Namespace) -> int:
    from central.app import run
    from central.settings import CentralSettings

    overrides: dict[str, Any] = {}
    for name in ("database_url", "mqtt_url", "mqtt_username", "mqtt_password", "mqtt_share_group",
                 "http_host", "http_port", "seed_file"):
        value = getattr(args, name)
        if value is not None:
            overrides[name] = value
    if args.no_migrate:
        overrides["auto_migrate"] = False
    settings = CentralSettings(**overrides)
    run(settings)
    return 0


def cmd_central_prune(args: argparse.Namespace) -> int:
    from central.clock import SystemClock
    from central.db import Database
    from central.maintenance import Retention, prune
    from central.settings import CentralSettings

    settings = CentralSettings(**({"database_url": args.database_url} if args.database_url else {}))
    database = Database(settings.database_url)
    try:
        result = prune(database=database, retention=Retention.from_settings(settings), now=SystemClock().now(),
                       on_batch=lambda table, count: print(f"  deleted {count} rows of {table}", flush=True))
    finally:
        database.dispose()
    if result.skipped:
        print("another central worker is running a retention pass right now; nothing done (try again later)")
        return 0
    for table, count in result.deleted.items():
        print(f"{table}: {count} rows deleted")
    return 0


def cmd_central_seed(args: argparse.Namespace) -> int:
    from central.clock import SystemClock
    from central.db import Database, migrate
    from central.errors import SeedError
    from central.seed import load_seed
    from central.settings import CentralSettings, Environment

    settings = CentralSettings(**({"database_url": args.database_url} if args.database_url else {}))
    print(f"migrating {settings.database_url.split('@')[-1]} ...", flush=True)
    migrate(settings.database_url)
    database = Database(settings.database_url)
    try:
        with database.session() as session, session.begin():
            summary = load_seed(session, args.file, now=SystemClock().now(),
                                production=settings.environment is Environment.PRODUCTION)
    except SeedError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    finally:
        database.dispose()
    print(f"seeded from {args.file}: {summary.created} users created, {summary.updated} updated")
    return 0


def cmd_migrate(args: argparse.Namespace) -> int:
    from central.db import migrate
    from central.settings import CentralSettings

    settings = CentralSettings(**({"database_url": args.database_url} if args.database_url else {}))
    migrate(settings.database_url)
    print(f"database at {settings.database_url} is at the latest schema")
    return 0


def cmd_store(args: argparse.Namespace) -> int:
    from gateway.config import StoreConfig
    from gateway.runtime import run_store

    config = StoreConfig.load(args.config)
    # Everything loaded so far (libraries, profiles, config) lives as long as the process:
    # keep it out of the cyclic collector's scans, which otherwise cost ~8% of a busy store's CPU.
    gc.freeze()
    return _run(run_store(config))


def cmd_simulate(args: argparse.Namespace) -> int:
    from simulators.config import SimulatorConfig
    from simulators.runner import run_simulators

    config = SimulatorConfig.load(args.config)
    return _run(run_simulators(config))


def cmd_broker(args: argparse.Namespace) -> int:
    from storeguard.broker import run_broker

    return _run(run_broker(args.host, args.port))


def cmd_demo(args: argparse.Namespace) -> int:
    from storeguard.demo import run_demo

    return run_demo(workdir=Path(args.workdir), check=args.check, timeout_s=args.timeout)


def cmd_profiles(args: argparse.Namespace) -> int:
    from device_profiles import ProfileError, ProfileRegistry, load_profile

    paths = [Path(p) for p in args.files]
    if not paths:
        registry = ProfileRegistry.load()
        for model in registry.models():
            profile = registry.get(model)
            print(f"{model:28} {profile.kind:26} {len(profile.points):3} points {len(profile.rules):3} rules")
        return 0
    failed = 0
    for path in paths:
        try:
            profile = load_profile(path)
        except ProfileError as exc:
            print(f"INVALID {exc}", file=sys.stderr)
            failed += 1
        else:
            print(f"ok      {path}: {profile.model}, {len(profile.points)} points, {len(profile.rules)} rules")
    return 1 if failed else 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="storeguard",
        description="StoreGuard: store equipment faults become dispatched, tracked repair tickets.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="Run 'storeguard <command> --help' for each command's options. Docs: README.md, docs/.",
    )
    parser.add_argument("--version", action="version", version=f"storeguard {__version__}")
    parser.add_argument("--log-level", default="INFO", help="DEBUG, INFO, WARNING or ERROR (default INFO)")
    sub = parser.add_subparsers(dest="command", required=True, metavar="command")

    p = sub.add_parser("central", help="run the central dispatcher (API, handheld app, MQTT ingest)",
                       description="Run central: REST API under /api/v1, the handheld app at /app, "
                       "MQTT ingest of store events and the ticket-status downlink. Every option can also "
                       "be set in the environment as STOREGUARD_<NAME> (e.g. STOREGUARD_DATABASE_URL).")
    p.add_argument("--database-url", help="SQLAlchemy URL: sqlite:///var/central.db or "
                   "postgresql+psycopg://user:pass@host/db")
    p.add_argument("--mqtt-url", help="broker, e.g. mqtt://127.0.0.1:1883")
    p.add_argument("--mqtt-username")
    p.add_argument("--mqtt-password")
    p.add_argument("--mqtt-share-group", help="consume through $share/<group>/... (Mosquitto 2, EMQX) "
                   "so several central workers split the load")
    p.add_argument("--host", dest="http_host", help="HTTP bind address")
    p.add_argument("--port", dest="http_port", type=int, help="HTTP port")
    p.add_argument("--seed", dest="seed_file", help="YAML file of users and technicians to create")
    p.add_argument("--no-migrate", action="store_true", help="do not apply database migrations at start")
    p.set_defaults(func=cmd_central)
    central_sub = p.add_subparsers(dest="central_command", metavar="[prune|seed]")
    prune = central_sub.add_parser(
        "prune", help="run one retention pass (old telemetry, HACCP log, ledgers, expired tokens) and exit",
        description="Delete telemetry samples, HACCP intervals, processed inbound and sent outbound messages "
        "older than their retention (STOREGUARD_*_RETENTION_DAYS) and expired API tokens, in batches of "
        "STOREGUARD_MAINTENANCE_BATCH_ROWS rows. See docs/telemetry-and-haccp.md.")
    prune.add_argument("--database-url", dest="database_url")
    prune.set_defaults(func=cmd_central_prune)
    seed = central_sub.add_parser(
        "seed", help="create or update users, technicians and stores from a YAML file, then exit",
        description="Apply migrations, then create or update the users, technicians and stores of FILE "
        "(idempotent; see central/seed.py for the format). Production loads users this way, never at start.")
    seed.add_argument("file", help="the seed YAML file")
    seed.add_argument("--database-url", dest="database_url")
    seed.set_defaults(func=cmd_central_seed)

    p = sub.add_parser("migrate", help="apply central's database migrations (Alembic) and exit")
    p.add_argument("--database-url")
    p.set_defaults(func=cmd_migrate)

    p = sub.add_parser("store", help="run one store: edge polling, fault rules, outbox, MQTT, store page",
                       description="Run a store gateway from its YAML config (buses, devices, broker, "
                       "outbox, store page). See README 'Store configuration'.")
    p.add_argument("--config", required=True, type=Path, help="store.yaml")
    p.set_defaults(func=cmd_store)

    p = sub.add_parser("simulate", help="serve simulated devices on Modbus TCP and RTU pseudo-terminals",
                       description="Run profile-driven device simulators with a thermal model and "
                       "scripted or injected faults. See README 'Simulators'.")
    p.add_argument("--config", required=True, type=Path, help="simulators.yaml")
    p.set_defaults(func=cmd_simulate)

    p = sub.add_parser("broker", help="run the embedded MQTT broker (amqtt) for a demo or a single store")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=1883)
    p.set_defaults(func=cmd_broker)

    p = sub.add_parser("demo", help="run the whole system on this machine (embedded broker, SQLite)",
                       description="Start the embedded broker, central on SQLite, two simulated stores "
                       "with their gateways, and script faults that become tickets. With --check: run "
                       "headless, play the technician through the API, and exit 0 once every status "
                       "reached the store (non-zero with the reason otherwise).")
    p.add_argument("--check", action="store_true", help="headless self-check; exit status says if the loop closed")
    p.add_argument("--workdir", default="var/demo", help="where the demo keeps configs, databases and logs")
    p.add_argument("--timeout", type=float, default=120.0, help="--check gives up after this many seconds")
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("profiles", help="list the built-in device profiles, or validate profile files")
    p.add_argument("files", nargs="*", help="profile YAML files to validate")
    p.set_defaults(func=cmd_profiles)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    configure_logging(args.log_level)
    try:
        return int(args.func(args))
    except (ValueError, OSError, KeyError, RuntimeError) as exc:
        # Config, profile and start-up errors: say what is wrong, not a traceback.
        logging.getLogger("storeguard").debug("start-up failed", exc_info=True)
        print(f"storeguard {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
