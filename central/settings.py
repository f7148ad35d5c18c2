"""Central's one settings object (configuration layer).

Built once by the caller (`CentralSettings()` reads `STOREGUARD_*` variables) and passed to
`create_app`; nothing in central reads the environment on its own.
"""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, Literal, Self
from urllib.parse import urlsplit

from pydantic import Field, PrivateAttr, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict
from sqlalchemy.engine import make_url

# Values that must never reach production: documentation examples and well-known defaults.
PLACEHOLDER_SECRETS = frozenset(
    {"", "changethis", "changeme", "change-me", "password", "secret", "admin", "storeguard", "postgres", "demo"}
)


class Environment(StrEnum):
    DEVELOPMENT = "development"
    PRODUCTION = "production"


class CentralSettings(BaseSettings):
    """Everything central needs to run; env names are the field names with `STOREGUARD_`."""

    model_config = SettingsConfigDict(env_prefix="STOREGUARD_", extra="ignore", frozen=True)

    environment: Environment = Environment.DEVELOPMENT
    database_url: str = "sqlite:///var/central.db"
    auto_migrate: bool = True
    seed_file: Path | None = None
    profile_dirs: list[Path] = Field(default_factory=list)  # extra device profile directories

    http_host: str = "127.0.0.1"
    http_port: Annotated[int, Field(ge=0, le=65535)] = 8080
    token_ttl_s: Annotated[int, Field(ge=60, le=30 * 86_400)] = 12 * 3600

    mqtt_enabled: bool = True
    mqtt_url: str = "mqtt://127.0.0.1:1883"
    mqtt_username: str | None = None  # None: the client id is sent (amqtt queues only for named clients)
    mqtt_password: SecretStr | None = None
    mqtt_client_id: Annotated[str, Field(pattern=r"^[A-Za-z0-9_.:-]{1,60}$")] = "storeguard-central"
    mqtt_share_group: Annotated[str, Field(pattern=r"^[A-Za-z0-9_-]{1,64}$")] | None = None
    mqtt_protocol: Literal["3.1.1", "5"] = "3.1.1"
    mqtt_keepalive_s: Annotated[int, Field(ge=5, le=3600)] = 30
    mqtt_session_expiry_s: Annotated[int, Field(ge=60)] = 7 * 86_400  # MQTT 5 only
    mqtt_ca_file: Path | None = None  # mqtts: CA bundle; None = the system's
    mqtt_reconnect_min_s: Annotated[float, Field(gt=0, le=60)] = 0.5
    mqtt_reconnect_max_s: Annotated[float, Field(gt=0, le=600)] = 30.0

    ingest_queue_size: Annotated[int, Field(ge=1, le=100_000)] = 1000
    # tries of a message that fails (not for want of the database) before it becomes a dead letter
    ingest_max_attempts: Annotated[int, Field(ge=1, le=100)] = 3
    # store first, process second (docs/mqtt-contract.md, "How central ingests")
    ingest_retry_delay_s: Annotated[float, Field(ge=0, le=3600)] = 1.0  # first backoff of a failed message, doubling
    ingest_poll_s: Annotated[float, Field(gt=0, le=60)] = 0.5  # how often a worker looks for others' pending messages
    ingest_batch_size: Annotated[int, Field(ge=1, le=500)] = 20  # stored messages applied per transaction
    ingest_batch_budget_s: Annotated[float, Field(ge=0, le=10)] = 0.1  # ... as many as fit in this time
    publisher_poll_s: Annotated[float, Field(gt=0, le=60)] = 1.0
    publisher_max_inflight: Annotated[int, Field(ge=1, le=65_000)] = 500

    timers_enabled: bool = True  # fire SLA warnings, escalations, grace periods (every worker may)
    timer_interval_s: Annotated[float, Field(gt=0, le=60)] = 1.0  # the longest a due timer waits
    # a repair nobody has accepted whose fault clears and stays clear this long resolves as "recovered"
    recovery_grace_s: Annotated[float, Field(ge=0, le=7 * 86_400)] = 900
    # the same fault raised again within this time of its ticket's resolution reopens that ticket
    reopen_window_s: Annotated[float, Field(ge=0, le=30 * 86_400)] = 86_400
    # this many devices of one store with new repairs within the window become one incident (0: never)
    correlation_min_devices: Annotated[int, Field(ge=0, le=1000)] = 3
    correlation_window_s: Annotated[float, Field(ge=0, le=86_400)] = 600
    # a store's gateway silent (its last will) this long opens a store_offline incident
    store_offline_grace_s: Annotated[float, Field(ge=0, le=86_400)] = 600

    # HACCP temperature log and retention (docs/telemetry-and-haccp.md)
    haccp_interval_s: Annotated[int, Field(ge=60, le=86_400)] = 900  # must divide a day: intervals align to midnight UTC
    maintenance_enabled: bool = True  # run the retention job in this worker (one pass at a time across workers)
    maintenance_interval_s: Annotated[float, Field(ge=1, le=7 * 86_400)] = 3600.0
    maintenance_batch_rows: Annotated[int, Field(ge=100, le=100_000)] = 5000  # rows per DELETE statement
    telemetry_retention_days: Annotated[int, Field(ge=1, le=3650)] = 30
    haccp_retention_days: Annotated[int, Field(ge=1, le=3650)] = 730
    inbound_retention_days: Annotated[int, Field(ge=1, le=3650)] = 14  # must exceed the stores' redelivery horizon
    outbound_retention_days: Annotated[int, Field(ge=1, le=3650)] = 14

    # notifications to people: ticket changes, SLA warnings, escalations (docs/notifications.md)
    notify_enabled: bool = True  # False: no notification is written or delivered by this worker
    notify_channels: Annotated[tuple[Literal["log", "webhook"], ...], NoDecode] = ("log",)  # env: "log,webhook"
    notify_webhook_url: str | None = None  # http(s) URL receiving signed JSON POSTs
    notify_webhook_secret: SecretStr | None = None  # HMAC key of X-StoreGuard-Signature
    notify_webhook_secret_file: Path | None = None  # or: a file holding the key (a mounted secret)
    notify_webhook_timeout_s: Annotated[float, Field(gt=0, le=120)] = 10.0
    notify_poll_s: Annotated[float, Field(gt=0, le=60)] = 1.0  # the longest a due retry waits
    _notify_webhook_key: SecretStr | None = PrivateAttr(default=None)  # the secret, from the value or the file

    @field_validator("notify_channels", mode="before")
    @classmethod
    def _notify_channels_list(cls, value: Any) -> Any:
        if isinstance(value, str):  # "log,webhook" from the environment
            value = [part.strip() for part in value.split(",") if part.strip()]
        return tuple(dict.fromkeys(value)) if isinstance(value, (list, tuple)) else value

    @model_validator(mode="after")
    def _notify_webhook_configured(self) -> Self:
        key = self.notify_webhook_secret
        if self.notify_webhook_secret_file is not None:
            if key is not None:
                raise ValueError("set STOREGUARD_NOTIFY_WEBHOOK_SECRET or STOREGUARD_NOTIFY_WEBHOOK_SECRET_FILE, "
                                 "not both")
            try:
                key = SecretStr(self.notify_webhook_secret_file.read_text(encoding="utf-8").strip())
            except OSError as exc:
                raise ValueError(f"STOREGUARD_NOTIFY_WEBHOOK_SECRET_FILE cannot be read: {exc}") from exc
        self._notify_webhook_key = key
        if not self.notify_enabled or "webhook" not in self.notify_channels:
            return self
        problems = []
        url = urlsplit(self.notify_webhook_url or "")
        if url.scheme not in ("http", "https") or not url.hostname:
            problems.append("set STOREGUARD_NOTIFY_WEBHOOK_URL to the receiver's http(s):// URL")
        if key is None or not key.get_secret_value():
            problems.append("set STOREGUARD_NOTIFY_WEBHOOK_SECRET (or STOREGUARD_NOTIFY_WEBHOOK_SECRET_FILE) to the "
                            "key receivers verify X-StoreGuard-Signature with")
        elif self.environment is Environment.PRODUCTION and key.get_secret_value() in PLACEHOLDER_SECRETS:
            problems.append("STOREGUARD_NOTIFY_WEBHOOK_SECRET is a placeholder")
        if problems:
            raise ValueError("the webhook notification channel is enabled (STOREGUARD_NOTIFY_CHANNELS): "
                             + "; ".join(problems))
        return self

    @property
    def notify_webhook_key(self) -> SecretStr | None:
        """The webhook's HMAC key, from STOREGUARD_NOTIFY_WEBHOOK_SECRET or its _FILE."""
        return self._notify_webhook_key

    @field_validator("haccp_interval_s")
    @classmethod
    def _haccp_interval_divides_a_day(cls, value: int) -> int:
        if 86_400 % value:
            raise ValueError(f"haccp_interval_s must divide a day (86400 s), e.g. 300, 900 or 3600, not {value}")
        return value

    @model_validator(mode="after")
    def _ledger_outlives_redelivery(self) -> Self:
        # A message the broker still holds for central's session could come back after its
        # ledger row was pruned and be applied twice (docs/telemetry-and-haccp.md, "Retention").
        if self.inbound_retention_days * 86_400 < self.mqtt_session_expiry_s:
            raise ValueError(f"inbound_retention_days ({self.inbound_retention_days}) must cover "
                             f"mqtt_session_expiry_s ({self.mqtt_session_expiry_s} s): the idempotency ledger "
                             "must outlive the broker's redelivery horizon")
        return self

    @field_validator("mqtt_url")
    @classmethod
    def _mqtt_url(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in ("mqtt", "mqtts") or not parts.hostname:
            raise ValueError("mqtt_url must look like mqtt://host:port or mqtts://host:port")
        try:
            parts.port  # noqa: B018 - raises on a bad port
        except ValueError as exc:
            raise ValueError(f"mqtt_url has an invalid port: {exc}") from exc
        return value

    @field_validator("database_url")
    @classmethod
    def _database_url(cls, value: str) -> str:
        backend = make_url(value).get_backend_name()
        if backend not in ("sqlite", "postgresql"):
            raise ValueError(f"database_url must be SQLite or PostgreSQL, not {backend!r}")
        return value

    @model_validator(mode="after")
    def _no_default_secrets_in_production(self) -> Self:
        if self.environment is not Environment.PRODUCTION:
            return self
        problems = []
        if self.mqtt_enabled:
            if not self.mqtt_username:
                problems.append("STOREGUARD_MQTT_USERNAME must be set (per-client broker credentials)")
            if self.mqtt_password is None or self.mqtt_password.get_secret_value() in PLACEHOLDER_SECRETS:
                problems.append("STOREGUARD_MQTT_PASSWORD is missing or a placeholder")
        if self.seed_file is not None:
            problems.append("STOREGUARD_SEED_FILE must not be set: create users with "
                            "`storeguard central seed FILE` (demo users are never loaded in production)")
        db_password = make_url(self.database_url).password
        if db_password is not None and str(db_password) in PLACEHOLDER_SECRETS:
            problems.append("the password in STOREGUARD_DATABASE_URL is a placeholder")
        if problems:
            raise ValueError("refusing to start in production: " + "; ".join(problems))
        return self

    @property
    def mqtt_host(self) -> str:
        return urlsplit(self.mqtt_url).hostname or ""

    @property
    def mqtt_port(self) -> int:
        parts = urlsplit(self.mqtt_url)
        return parts.port or (8883 if parts.scheme == "mqtts" else 1883)

    @property
    def mqtt_tls(self) -> bool:
        return urlsplit(self.mqtt_url).scheme == "mqtts"
