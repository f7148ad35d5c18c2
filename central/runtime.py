"""The objects one central process runs with (composition root), built by `create_app`."""

from __future__ import annotations

from dataclasses import dataclass

from central.clock import Clock
from central.db import Database
from central.ingest.consumer import MqttConsumer
from central.ingest.processor import Ingestor
from central.ingest.worker import InboxWorker
from central.maintenance import MaintenanceLoop
from central.metrics import Metrics
from central.notify.loop import NotifyLoop
from central.publisher import StatusPublisher
from central.settings import CentralSettings
from central.timers.loop import TimerLoop
from central.timers.service import TimerRegistry
from device_profiles import ProfileRegistry


@dataclass
class Runtime:
    settings: CentralSettings
    clock: Clock
    database: Database
    metrics: Metrics
    profiles: ProfileRegistry
    ingestor: Ingestor
    timer_registry: TimerRegistry
    consumer: MqttConsumer | None = None  # None when MQTT is disabled or not started yet
    inbox: InboxWorker | None = None  # applies stored messages; None when MQTT is disabled or not started yet
    publisher: StatusPublisher | None = None
    timers: TimerLoop | None = None  # None when timers are disabled or not started yet
    maintenance: MaintenanceLoop | None = None  # the retention job; None when disabled or not started yet
    notifier: NotifyLoop | None = None  # delivers notifications; None when disabled or not started yet
