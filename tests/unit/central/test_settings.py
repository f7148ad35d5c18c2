"""Settings: env prefix, URL validation, and no default secrets in production."""

from __future__ import annotations

import os

import pytest
from pydantic import ValidationError

from central.settings import CentralSettings


def test_reads_storeguard_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STOREGUARD_DATABASE_URL", "postgresql+psycopg://sg:pw-from-vault@db/central")
    monkeypatch.setenv("STOREGUARD_MQTT_URL", "mqtts://broker.example:8884")
    monkeypatch.setenv("STOREGUARD_MQTT_SHARE_GROUP", "central")
    monkeypatch.setenv("STOREGUARD_AUTO_MIGRATE", "false")
    settings = CentralSettings()
    assert settings.database_url.startswith("postgresql+psycopg://")
    assert (settings.mqtt_host, settings.mqtt_port, settings.mqtt_tls) == ("broker.example", 8884, True)
    assert settings.mqtt_share_group == "central"
    assert settings.auto_migrate is False


def test_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in [n for n in os.environ if n.startswith("STOREGUARD_")]:
        monkeypatch.delenv(name)
    settings = CentralSettings()
    assert settings.database_url == "sqlite:///var/central.db"
    assert settings.mqtt_share_group is None  # plain subscription: amqtt has no $share
    assert settings.auto_migrate is True
    assert (settings.mqtt_host, settings.mqtt_port, settings.mqtt_tls) == ("127.0.0.1", 1883, False)


@pytest.mark.parametrize("url", ["http://broker:1883", "mqtt://", "mqtt://host:notaport", "tcp://host"])
def test_bad_mqtt_urls_are_refused(url: str) -> None:
    with pytest.raises(ValidationError, match="mqtt_url"):
        CentralSettings(mqtt_url=url)


def test_only_sqlite_or_postgresql() -> None:
    with pytest.raises(ValidationError, match="SQLite or PostgreSQL"):
        CentralSettings(database_url="mysql://x@y/z")


def test_production_refuses_default_and_placeholder_secrets() -> None:
    with pytest.raises(ValidationError, match="STOREGUARD_MQTT_USERNAME"):
        CentralSettings(environment="production")
    with pytest.raises(ValidationError, match="STOREGUARD_MQTT_PASSWORD"):
        CentralSettings(environment="production", mqtt_username="central", mqtt_password="changethis")
    with pytest.raises(ValidationError, match="STOREGUARD_DATABASE_URL"):
        CentralSettings(environment="production", mqtt_username="central", mqtt_password="Xk9-long-secret",
                        database_url="postgresql+psycopg://sg:postgres@db/central")
    ok = CentralSettings(environment="production", mqtt_username="central", mqtt_password="Xk9-long-secret",
                         database_url="postgresql+psycopg://sg:Xk9-db-secret@db/central")
    assert ok.environment.value == "production"


def test_development_accepts_anonymous_broker() -> None:
    assert CentralSettings(environment="development").mqtt_username is None


def test_production_never_seeds_at_start() -> None:
    with pytest.raises(ValidationError, match="storeguard central seed"):
        CentralSettings(environment="production", mqtt_username="central", mqtt_password="Xk9-long-secret",
                        database_url="postgresql+psycopg://sg:Xk9-db-secret@db/central", seed_file="seed.yaml")
    assert CentralSettings(environment="development", seed_file="seed.yaml").seed_file is not None
