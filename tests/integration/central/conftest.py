"""Fixtures for central's integration tests: a migrated, seeded database on SQLite and PostgreSQL.

The `db` and `client` fixtures switch the linked-work templates off (a case over temperature
would add two store tasks to every ticket count) and the client's correlation too, unless the
test is marked `linked_work`; tests of those features turn them on themselves.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from central.app import create_app
from central.auth.passwords import hash_password
from central.clock import FakeClock
from central.db import Database, migrate
from central.ingest.processor import Ingestor
from central.metrics import Metrics
from central.seed import load_seed
from central.settings import CentralSettings
from device_profiles import ProfileRegistry
from tests.integration.central.support import PASSWORD, T0, seed_yaml, set_templates


@pytest.fixture(scope="session")
def password_hash() -> str:
    return hash_password(PASSWORD)  # once: scrypt is slow on purpose


@pytest.fixture
def seed_path(tmp_path: Path, password_hash: str) -> Path:
    path = tmp_path / "seed.yaml"
    path.write_text(seed_yaml(password_hash))
    return path


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(T0)


def _linked_work(request: pytest.FixtureRequest) -> bool:
    return request.node.get_closest_marker("linked_work") is not None


@pytest.fixture
def db(database_url: str, seed_path: Path, clock: FakeClock, request: pytest.FixtureRequest) -> Iterator[Database]:
    migrate(database_url)
    database = Database(database_url)
    with database.session() as session, session.begin():
        load_seed(session, seed_path, now=clock.now())
    set_templates(database, enabled=_linked_work(request))
    yield database
    database.dispose()


@pytest.fixture
def metrics() -> Metrics:
    return Metrics()


@pytest.fixture(scope="session")
def profiles() -> ProfileRegistry:
    return ProfileRegistry.load()


@pytest.fixture
def ingestor(db: Database, metrics: Metrics, clock: FakeClock, profiles: ProfileRegistry) -> Ingestor:
    return Ingestor(database=db, profiles=profiles, metrics=metrics, clock=clock)


@pytest.fixture
def client(database_url: str, seed_path: Path, clock: FakeClock, request: pytest.FixtureRequest
           ) -> Iterator[TestClient]:
    on = _linked_work(request)
    if not on:
        database = Database(database_url)
        migrate(database_url)
        set_templates(database, enabled=False)
        database.dispose()
    settings = CentralSettings(database_url=database_url, mqtt_enabled=False, seed_file=seed_path,
                               correlation_min_devices=3 if on else 0)
    with TestClient(create_app(settings, clock=clock)) as test_client:
        yield test_client
