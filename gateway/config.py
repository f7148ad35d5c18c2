"""Store gateway settings (gateway layer): one `StoreConfig` per store process, from YAML.

Built once in `main()` and passed down; nothing here reads the environment at import time.
Relative paths in the file (`outbox.path`, `profiles_dirs`) are relative to the file.

    store_id: store-001                # contract pattern ^[a-z0-9][a-z0-9_-]{0,62}$
    name: "Harbour Road"
    mqtt:
      url: mqtt://127.0.0.1:1883
      username: store-001              # optional
      password: secret                 # optional
      client_id: sg-gw-store-001       # default sg-gw-<store_id>
      keepalive_s: 30
      reconnect_min_s: 1               # backoff doubles up to reconnect_max_s
      reconnect_max_s: 60
      inflight_window: 20              # unacknowledged outbox rows on the wire
    outbox: {path: store.db, max_bytes: 100000000, max_age_s: 604800}
    http: {host: 0.0.0.0, port: 8080}  # port 0 = any free port
    telemetry_interval_s: 30
    health_interval_s: 60
    profiles_dirs: [profiles]          # extra device profiles, on top of the built-in ones
    buses: [...]                       # edge.config.BusConfig entries
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Self
from urllib.parse import urlsplit

import yaml
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator, model_validator

from device_profiles import ProfileError, ProfileRegistry
from edge.config import BusConfig, EdgeConfig
from gateway.errors import ConfigError
from protocols.mqtt.messages import StoreId

__all__ = ["ConfigError", "HttpSettings", "MqttSettings", "OutboxSettings", "StoreConfig", "load_registry"]

ClientId = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$")]
DEFAULT_MQTT_PORT = 1883


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class MqttSettings(_Strict):
    url: str
    username: Annotated[str, Field(min_length=1, max_length=128)] | None = None
    password: SecretStr | None = None
    client_id: ClientId
    keepalive_s: Annotated[int, Field(ge=5, le=3600)] = 30
    reconnect_min_s: Annotated[float, Field(gt=0, le=300)] = 1.0
    reconnect_max_s: Annotated[float, Field(gt=0, le=3600)] = 60.0
    inflight_window: Annotated[int, Field(ge=1, le=1000)] = 20

    @field_validator("url")
    @classmethod
    def _mqtt_url(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme != "mqtt":
            raise ValueError(f"{value!r} must look like mqtt://host:port")
        if not parts.hostname:
            raise ValueError(f"{value!r} names no host")
        try:
            parts.port  # noqa: B018 - raises on a bad port
        except ValueError as exc:
            raise ValueError(f"{value!r} has an invalid port") from exc
        if parts.path not in ("", "/") or parts.query or parts.username:
            raise ValueError(f"{value!r}: put credentials in username/password, and no path or query")
        return value

    @model_validator(mode="after")
    def _backoff(self) -> Self:
        if self.reconnect_max_s < self.reconnect_min_s:
            raise ValueError("reconnect_max_s must not be below reconnect_min_s")
        return self

    @property
    def host(self) -> str:
        return urlsplit(self.url).hostname or ""

    @property
    def port(self) -> int:
        return urlsplit(self.url).port or DEFAULT_MQTT_PORT


class OutboxSettings(_Strict):
    path: Path
    max_bytes: Annotated[int, Field(ge=64 * 1024)] = 100_000_000
    max_age_s: Annotated[float, Field(gt=0)] = 7 * 86_400  # telemetry and health only; faults never age out


class HttpSettings(_Strict):
    host: str = "127.0.0.1"
    port: Annotated[int, Field(ge=0, le=65535)] = 8080


class StoreConfig(_Strict):
    store_id: StoreId
    name: Annotated[str, Field(min_length=1, max_length=200)]
    mqtt: MqttSettings
    outbox: OutboxSettings
    http: HttpSettings = HttpSettings()
    telemetry_interval_s: Annotated[float, Field(gt=0, le=3600)] = 30.0
    health_interval_s: Annotated[float, Field(gt=0, le=3600)] = 60.0
    profiles_dirs: list[Path] = Field(default_factory=list)
    buses: Annotated[list[BusConfig], Field(min_length=1)]

    @model_validator(mode="before")
    @classmethod
    def _default_client_id(cls, data: Any) -> Any:
        if isinstance(data, dict) and isinstance(data.get("mqtt"), dict) and isinstance(data.get("store_id"), str):
            mqtt = data["mqtt"]
            if not mqtt.get("client_id"):
                return {**data, "mqtt": {**mqtt, "client_id": f"sg-gw-{data['store_id']}"}}
        return data

    @field_validator("buses")
    @classmethod
    def _valid_edge(cls, buses: list[BusConfig]) -> list[BusConfig]:
        try:
            EdgeConfig(buses=buses)
        except ValidationError as exc:
            raise ValueError(_first_message(exc)) from None
        return buses

    @property
    def edge_config(self) -> EdgeConfig:
        return EdgeConfig(buses=self.buses)

    @classmethod
    def load(cls, path: Path | str) -> StoreConfig:
        """Read, validate and check the profiles of one store's YAML file; raises ConfigError."""
        path = Path(path)
        try:
            raw = yaml.safe_load(path.read_text(encoding="utf-8"))
        except OSError as exc:
            raise ConfigError(path, "file", f"cannot read: {exc.strerror or exc}") from exc
        except yaml.YAMLError as exc:
            raise ConfigError(path, "yaml", str(exc).replace("\n", " ")) from exc
        if not isinstance(raw, dict):
            raise ConfigError(path, "config", "the file must hold a YAML mapping")
        try:
            config = cls.model_validate(raw)
        except ValidationError as exc:
            first = exc.errors()[0]
            field = ".".join(str(p) for p in first["loc"]) or "config"
            raise ConfigError(path, field, _first_message(exc)) from exc
        config = config._relative_to(path.parent)
        load_registry(config, source=path)
        return config

    def _relative_to(self, base: Path) -> StoreConfig:
        outbox = self.outbox.model_copy(update={"path": base / self.outbox.path})
        return self.model_copy(update={"outbox": outbox, "profiles_dirs": [base / d for d in self.profiles_dirs]})


def load_registry(config: StoreConfig, *, source: Path | str = "<store config>") -> ProfileRegistry:
    """The profiles this store uses (built-in + `profiles_dirs`); every device's profile must exist."""
    try:
        registry = ProfileRegistry.load(list(config.profiles_dirs))
    except ProfileError as exc:
        raise ConfigError(source, "profiles_dirs", str(exc)) from exc
    for b, bus in enumerate(config.buses):
        for d, device in enumerate(bus.devices):
            if device.profile not in registry:
                known = ", ".join(registry.models()) or "none"
                raise ConfigError(
                    source,
                    f"buses.{b}.devices.{d}.profile",
                    f"device {device.id!r}: unknown device profile {device.profile!r} (known: {known})",
                )
            protocol = registry.get(device.profile).protocol
            wanted = bus.transport if bus.transport in ("escpos", "cctalk") else "modbus"
            if protocol != wanted:
                raise ConfigError(
                    source,
                    f"buses.{b}.devices.{d}.profile",
                    f"device {device.id!r}: profile {device.profile} speaks {protocol}, not {wanted} "
                    f"(the {bus.transport} bus {bus.name!r})",
                )
    return registry


def _first_message(exc: ValidationError) -> str:
    return str(exc.errors()[0]["msg"]).removeprefix("Value error, ")
