"""Session-wide fixtures: private Mosquitto and PostgreSQL, never the machine's shared ones.

Without a service binary the suites that need it are skipped and listed at the end; with
CI=true a missing service fails the run instead.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.services import MosquittoProcess, PostgresCluster, ServiceUnavailable

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
_SKIPPED_SERVICES: set[str] = set()


def _unavailable(service: str, exc: Exception) -> None:
    if IN_CI:
        pytest.fail(f"{service} is required in CI but unavailable: {exc}", pytrace=False)
    _SKIPPED_SERVICES.add(f"{service}: {exc}")
    pytest.skip(f"{service} unavailable: {exc}")


def _private_mosquitto() -> Iterator[MosquittoProcess]:
    try:
        broker = MosquittoProcess()
    except ServiceUnavailable as exc:
        _unavailable("mosquitto", exc)
    broker.start()
    yield broker
    broker.kill()


@pytest.fixture(scope="session")
def mosquitto_session() -> Iterator[MosquittoProcess]:
    """One private broker for the session (tests that kill it use `mosquitto` instead)."""
    yield from _private_mosquitto()


@pytest.fixture
def mosquitto() -> Iterator[MosquittoProcess]:
    """A private broker for one test, which the test may stop, kill and restart."""
    yield from _private_mosquitto()


@pytest.fixture(scope="session")
def postgres_cluster() -> Iterator[PostgresCluster]:
    try:
        cluster = PostgresCluster()
    except ServiceUnavailable as exc:
        _unavailable("postgresql", exc)
    cluster.start()
    yield cluster
    cluster.cleanup()


@pytest.fixture
def postgres_url(postgres_cluster: PostgresCluster) -> str:
    """A fresh, empty PostgreSQL database for one test."""
    return postgres_cluster.create_database()


@pytest.fixture(scope="session")
def migrated_sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A SQLite file migrated to the newest revision once per session; tests get copies."""
    import sqlite3

    from central.db import migrate

    path = tmp_path_factory.mktemp("template") / "central.db"
    migrate(f"sqlite:///{path}")
    connection = sqlite3.connect(path, isolation_level=None)
    try:
        connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # everything in the main file before copying
    finally:
        connection.close()
    return path


@pytest.fixture(scope="session")
def migrated_postgres_template(postgres_cluster: PostgresCluster) -> str:
    """A PostgreSQL database migrated once per session, used as the TEMPLATE of per-test databases."""
    from sqlalchemy.engine import make_url

    from central.db import migrate

    url = postgres_cluster.create_database(prefix="template")
    migrate(url)  # migrate() disposes its engine: no connection is left to block CREATE ... TEMPLATE
    return str(make_url(url).database)


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Runs a test on SQLite and on PostgreSQL through the same code.

    The database is already migrated (a copy of a session-wide template: migrating seven
    revisions per test cost ~2 s each); tests marked `empty_database` get an empty one.
    """
    empty = request.node.get_closest_marker("empty_database") is not None
    if request.param == "sqlite":
        path = tmp_path / "central.db"
        if not empty:
            shutil.copyfile(request.getfixturevalue("migrated_sqlite_template"), path)
        return f"sqlite:///{path}"
    cluster: PostgresCluster = request.getfixturevalue("postgres_cluster")
    if empty:
        return cluster.create_database()
    return cluster.create_database(template=request.getfixturevalue("migrated_postgres_template"))


def pytest_terminal_summary(terminalreporter, exitstatus, config) -> None:  # type: ignore[no-untyped-def]
    if _SKIPPED_SERVICES:
        terminalreporter.section("skipped service suites")
        for line in sorted(_SKIPPED_SERVICES):
            terminalreporter.write_line(f"SKIPPED (service missing) {line}")
