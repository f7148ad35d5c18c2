"""paho-mqtt client construction shared by the ingest consumer and the status publisher.

One place turns CentralSettings into a configured paho client (protocol, persistent
session, credentials, TLS, reconnect backoff), so both connections behave alike.
"""

from __future__ import annotations

import logging

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from central.settings import CentralSettings

log = logging.getLogger(__name__)


def new_client(settings: CentralSettings, *, client_id: str, persistent: bool, manual_ack: bool = False) -> mqtt.Client:
    """A paho client; `persistent` keeps the broker session (and its queued QoS 1 messages)."""
    v5 = settings.mqtt_protocol == "5"
    client = mqtt.Client(
        callback_api_version=CallbackAPIVersion.VERSION2,
        client_id=client_id,
        protocol=mqtt.MQTTv5 if v5 else mqtt.MQTTv311,
        clean_session=None if v5 else not persistent,
        manual_ack=manual_ack,
    )
    password = settings.mqtt_password.get_secret_value() if settings.mqtt_password else None
    # amqtt queues messages for offline clients only when they log in with a name
    client.username_pw_set(settings.mqtt_username or client_id, password)
    if settings.mqtt_tls:
        client.tls_set(ca_certs=str(settings.mqtt_ca_file) if settings.mqtt_ca_file else None)
    client.reconnect_delay_set(  # paho's hints say int; its backoff arithmetic takes floats
        min_delay=settings.mqtt_reconnect_min_s, max_delay=settings.mqtt_reconnect_max_s  # type: ignore[arg-type]
    )
    client.enable_logger(logging.getLogger(f"{__name__}.paho"))
    return client


def connect_async(
    client: mqtt.Client, settings: CentralSettings, *, persistent: bool, receive_maximum: int | None = None
) -> None:
    """Start connecting in the background (the loop thread connects and reconnects)."""
    if settings.mqtt_protocol != "5":
        client.connect_async(settings.mqtt_host, settings.mqtt_port, settings.mqtt_keepalive_s)
        return
    properties = Properties(PacketTypes.CONNECT)
    if persistent:
        properties.SessionExpiryInterval = settings.mqtt_session_expiry_s
    if receive_maximum is not None:
        # the broker sends no more unacknowledged QoS 1 messages than the ingest queue holds
        properties.ReceiveMaximum = max(1, min(receive_maximum, 65_535))
    client.connect_async(
        settings.mqtt_host, settings.mqtt_port, settings.mqtt_keepalive_s, clean_start=not persistent,
        properties=properties,
    )
