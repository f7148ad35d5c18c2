"""The gateway's exception tree (gateway layer). Third-party errors are translated into these
at the adapter that meets them, chained `from exc`."""

from __future__ import annotations

from pathlib import Path


class GatewayError(Exception):
    """Base of every error the gateway raises on purpose."""


class ConfigError(GatewayError):
    """A store configuration is unreadable or invalid: names the file, the field and the reason."""

    def __init__(self, path: Path | str, field: str, reason: str) -> None:
        self.path = str(path)
        self.field = field
        self.reason = reason
        super().__init__(f"{path}: {field}: {reason}")


class StorageError(GatewayError):
    """The store database (outbox, sequence, ticket statuses) failed: disk full, corrupt, locked."""


class LinkError(GatewayError):
    """The MQTT link refused a publish."""


class LinkBusy(LinkError):
    """The MQTT client's own queue is full: try again after acknowledgements arrive."""
