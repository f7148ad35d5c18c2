"""Session-wide fixtures: private Mosquitto and PostgreSQL, never the machine's shared ones.

Without a service binary the suites that need it are skipped and listed at the end; with
CI=true a missing service fails the run instead.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

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


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path) -> str:  # type: ignore[no-untyped-def]
    """Runs a test on SQLite and on PostgreSQL through the same code."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'central.db'}"
    cluster: PostgresCluster = request.getfixturevalue("postgres_cluster")
    return cluster.create_database()


def pytest_terminal_summary(terminalreporter, exitstatus, config) -> None:  # type: ignore[no-untyped-def]
    if _SKIPPED_SERVICES:
        terminalreporter.section("skipped service suites")
        for line in sorted(_SKIPPED_SERVICES):
            terminalreporter.write_line(f"SKIPPED (service missing) {line}")
