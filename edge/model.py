"""What the edge hands to the store gateway (edge layer): fault changes and device snapshots.

The gateway stamps store id, sequence number and message id when it turns these into
contract messages; the edge knows nothing of MQTT.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from protocols.mqtt.messages import FaultClass, FaultState, Quality, Severity, TicketClass

PointValue = float | int | bool | str | None


@dataclass(frozen=True, slots=True)
class PointReading:
    point: str
    value: PointValue  # engineering value, enum name, or None when unknown
    quality: Quality
    unit: str = ""
    raw: int | None = None
    detail: str = ""  # why the quality is not good: a sentinel's name, "implausible ...", "offline"


@dataclass(frozen=True, slots=True)
class DeviceSnapshot:
    """The latest known state of one device."""

    device_id: str
    device_model: str
    location: str
    online: bool
    readings: tuple[PointReading, ...]
    read_at: datetime | None  # when the last successful poll completed
    last_ok_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class FaultChange:
    """A fault of one device was raised or cleared (or updated with new evidence)."""

    device_id: str
    device_model: str
    fault_code: str
    state: FaultState
    severity: Severity
    fault_class: FaultClass
    ticket_class: TicketClass
    occurred_at: datetime
    description: str = ""
    location: str = ""
    evidence: dict[str, float | int | bool | str | None] = field(default_factory=dict)


class EdgeSink(Protocol):
    """Where the edge delivers its output. The gateway implements it (a durable outbox)."""

    async def fault_changed(self, change: FaultChange) -> None: ...

    async def device_polled(self, snapshot: DeviceSnapshot) -> None: ...
