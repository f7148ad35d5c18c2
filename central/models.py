"""Every ORM model of central, imported once so `Base.metadata` is complete (for Alembic)."""

from central.auth.models import ApiToken, User
from central.db import Base
from central.faults.models import FaultStateRecord
from central.ingest.models import DeadLetter, InboundMessage
from central.notify.models import Notification
from central.outbox.models import OutboundMessage
from central.store_config.models import StoreConfigAck, StoreConfigVersion
from central.stores.models import Device, DevicePoint, Store
from central.telemetry.models import HaccpInterval, telemetry_samples
from central.sla.models import PriorityRule, SlaPolicy, StoreCalendar
from central.technicians.models import Technician
from central.thresholds.models import ThresholdChange, ThresholdOverride
from central.tickets.models import Ticket, TicketEvent, WorkTemplate
from central.timers.models import Timer

metadata = Base.metadata

__all__ = [
    "ApiToken",
    "DeadLetter",
    "Device",
    "DevicePoint",
    "FaultStateRecord",
    "HaccpInterval",
    "InboundMessage",
    "Notification",
    "OutboundMessage",
    "PriorityRule",
    "SlaPolicy",
    "Store",
    "StoreConfigAck",
    "StoreCalendar",
    "StoreConfigVersion",
    "Technician",
    "ThresholdChange",
    "ThresholdOverride",
    "Ticket",
    "TicketEvent",
    "Timer",
    "User",
    "WorkTemplate",
    "metadata",
    "telemetry_samples",
]
