"""Notification channels (notify layer, adapters): how a claimed notification reaches people.

A channel is a `Notifier`: `deliver` returns once the notification is handed over and raises
`DeliveryError` otherwise (the loop retries it). Two ship with central: `LogNotifier`, one
structured log line (the demo default), and `WebhookNotifier`, a signed JSON POST.

Webhook signature: `X-StoreGuard-Signature: sha256=<hex HMAC-SHA256 of "<timestamp>.<body>">`
keyed with the shared secret, `X-StoreGuard-Timestamp` the Unix time it was signed; receivers
check both with `verify_signature` (docs/notifications.md).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
from collections.abc import Mapping
from typing import Any, Protocol

import httpx

from central.clock import Clock, SystemClock
from central.notify.models import Delivery
from central.settings import CentralSettings

log = logging.getLogger(__name__)

TIMESTAMP_HEADER = "X-StoreGuard-Timestamp"
SIGNATURE_HEADER = "X-StoreGuard-Signature"
SIGNATURE_PREFIX = "sha256="


class DeliveryError(Exception):
    """A channel could not deliver. `reason` is short and stable (logged once, then counted)."""

    def __init__(self, reason: str, detail: str = "") -> None:
        self.reason = reason
        self.detail = detail
        super().__init__(f"{reason}: {detail}" if detail else reason)


class Notifier(Protocol):
    def deliver(self, notification: Delivery) -> None:
        """Hand the notification over; raise `DeliveryError` when it was not."""
        ...

    def close(self) -> None:
        """Release connections (the loop calls it when it stops)."""
        ...


class LogNotifier:
    """One INFO line per notification: who, what, which ticket. Payload details stay out of the log."""

    def __init__(self, logger: logging.Logger | None = None) -> None:
        self._log = logger or log

    def deliver(self, notification: Delivery) -> None:
        ticket = notification.payload.get("ticket") or {}
        event = notification.payload.get("event") or {}
        fields = {"notification_id": notification.id, "kind": notification.kind,
                  "ticket": ticket.get("number") or notification.ticket_id, "store": notification.store_id,
                  "status": ticket.get("status"), "event": event.get("type"),
                  "recipients": list(notification.recipients)}
        self._log.info("notification id=%d kind=%s ticket=%s store=%s status=%s event=%s recipients=%s note=%r",
                       notification.id, notification.kind, fields["ticket"], notification.store_id,
                       fields["status"], fields["event"], ",".join(notification.recipients) or "-",
                       str(event.get("note", ""))[:200], extra={"notification": fields})

    def close(self) -> None:
        pass


def sign(secret: str | bytes, timestamp: str, body: bytes) -> str:
    """The signature header value of `body` sent at `timestamp`: "sha256=<hex>"."""
    key = secret.encode() if isinstance(secret, str) else secret
    digest = hmac.new(key, timestamp.encode("ascii") + b"." + body, hashlib.sha256).hexdigest()
    return SIGNATURE_PREFIX + digest


def verify_signature(secret: str | bytes, timestamp: str, body: bytes, header: str, tolerance_s: float,
                     now: float) -> bool:
    """True if `header` signs `body` at `timestamp` with `secret`, and `timestamp` is within
    `tolerance_s` of `now` (Unix seconds), so a captured request cannot be replayed later."""
    try:
        sent = int(timestamp)
    except ValueError:
        return False
    if abs(now - sent) > tolerance_s:
        return False
    return hmac.compare_digest(sign(secret, timestamp, body).encode(), header.strip().encode())


class WebhookNotifier:
    """POST each notification as JSON to one URL, signed; any non-2xx answer is a failure."""

    def __init__(self, url: str, secret: str, timeout_s: float, *, clock: Clock | None = None,
                 transport: httpx.BaseTransport | None = None) -> None:
        self._url = url
        self._secret = secret
        self._clock = clock or SystemClock()
        self._client = httpx.Client(timeout=timeout_s, transport=transport, follow_redirects=False,
                                    headers={"User-Agent": "StoreGuard-central"})

    def body(self, notification: Delivery, sent_at: str) -> bytes:
        document: dict[str, Any] = {**notification.payload, "id": notification.id, "kind": notification.kind,
                                    "sent_at": sent_at, "created_at": notification.created_at.isoformat(),
                                    "ticket_id": notification.ticket_id, "store_id": notification.store_id,
                                    "recipients": list(notification.recipients)}
        return json.dumps(document, separators=(",", ":"), sort_keys=True).encode()

    def deliver(self, notification: Delivery) -> None:
        now = self._clock.now()
        timestamp = str(int(now.timestamp()))
        body = self.body(notification, now.isoformat())
        headers = {"Content-Type": "application/json", TIMESTAMP_HEADER: timestamp,
                   SIGNATURE_HEADER: sign(self._secret, timestamp, body)}
        try:
            response = self._client.post(self._url, content=body, headers=headers)
        except httpx.TimeoutException as exc:
            raise DeliveryError("timeout", type(exc).__name__) from exc
        except httpx.TransportError as exc:  # connect refused, DNS, reset: never the URL or the secret
            raise DeliveryError(f"transport:{type(exc).__name__}", str(exc)[:200]) from exc
        except httpx.HTTPError as exc:
            raise DeliveryError(f"http:{type(exc).__name__}", str(exc)[:200]) from exc
        if not response.is_success:
            raise DeliveryError(f"status:{response.status_code}", response.reason_phrase)

    def close(self) -> None:
        self._client.close()


def build_notifiers(settings: CentralSettings, *, clock: Clock) -> Mapping[str, Notifier]:
    """The notifier of each enabled channel (settings were validated: a webhook has a URL and a secret)."""
    notifiers: dict[str, Notifier] = {}
    for channel in settings.notify_channels:
        if channel == "log":
            notifiers[channel] = LogNotifier()
        elif channel == "webhook":
            secret = settings.notify_webhook_key
            if settings.notify_webhook_url is None or secret is None:
                raise ValueError("the webhook channel needs STOREGUARD_NOTIFY_WEBHOOK_URL and "
                                 "STOREGUARD_NOTIFY_WEBHOOK_SECRET (or _SECRET_FILE)")
            notifiers[channel] = WebhookNotifier(settings.notify_webhook_url, secret.get_secret_value(),
                                                 settings.notify_webhook_timeout_s, clock=clock)
    return notifiers
