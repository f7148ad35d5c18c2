"""Peripheral profile schema (device_profiles layer): serial POS peripherals, not Modbus.

A peripheral profile describes a receipt printer (ESC/POS real-time status) or a bill
validator (ccTalk buffered events): its serial defaults, its timeout, when it counts as
offline, and which decoded condition becomes which fault. Condition names are the codec's:
``PrinterCondition`` values for ESC/POS, the ccTalk names in ``CCTALK_EVENT_CONDITIONS``
(each one a set of ``BillEventCode`` values) plus ``events_lost`` (the event counter jumped
past the 5-event buffer). Each condition says whether it is a store task or a repair
(DEVICES.md §5.14) and where it comes from (provenance).
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

from device_profiles.schema import ModelId, Name, OfflineSettings, SerialSettings
from protocols.cctalk import BillEventCode, DefaultAddress
from protocols.escpos import PrinterCondition
from protocols.mqtt.messages import FaultClass, Severity, TicketClass


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ConditionType(StrEnum):
    """How a condition is observed.

    STATUS: read from a status reply every poll (ESC/POS bytes, or a lost-event check).
    EVENT: reported once in a ccTalk event buffer and latched until the device reports it
    cleared: a later credit (a bill went through, so the path is clear), a reset (counter
    back to 0, how an attendant clears a jam), or one of the condition's ``cleared_by`` codes.
    """

    STATUS = "status"
    EVENT = "event"


EVENTS_LOST = "events_lost"  # ccTalk: the counter moved by more than the buffer holds

# ccTalk condition -> the bill event codes (A = 0, B = code) that set it (DEVICES.md §3).
CCTALK_EVENT_CONDITIONS: dict[str, frozenset[BillEventCode]] = {
    "bill_jammed": frozenset(
        {BillEventCode.UNSAFE_JAM, BillEventCode.STACKER_JAM, BillEventCode.STACKER_JAMMED, BillEventCode.SAFE_JAM}
    ),
    "stacker_full": frozenset({BillEventCode.STACKER_FULL}),
    "stacker_removed": frozenset({BillEventCode.STACKER_REMOVED}),
    "stacker_faulty": frozenset({BillEventCode.STACKER_FAULTY}),
    "fraud": frozenset({BillEventCode.OPTO_FRAUD, BillEventCode.STRING_FRAUD}),
}
# Codes that report a condition over without a credit or reset (the stacker was emptied).
CCTALK_CLEARED_BY: dict[str, frozenset[BillEventCode]] = {
    "stacker_full": frozenset({BillEventCode.STACKER_REMOVED}),
}
ESCPOS_CONDITIONS = frozenset(c.value for c in PrinterCondition)
CCTALK_CONDITIONS = frozenset({*CCTALK_EVENT_CONDITIONS, EVENTS_LOST})


class PeripheralSerial(SerialSettings):
    """Serial defaults of a peripheral: ESC/POS 9600/19200 8N1, optional RTS/CTS; ccTalk 9600 8N1."""

    rtscts: bool = False  # hardware flow control (printers with a busy line)


class Condition(_Strict):
    """One decoded condition of the device and the fault it becomes."""

    name: Name  # the codec's condition name, e.g. paper_near_end, bill_jammed
    code: Name  # the fault code; one open ticket per (device, code)
    severity: Severity = Severity.MAJOR
    fault_class: FaultClass = FaultClass.EQUIPMENT
    ticket_class: TicketClass = TicketClass.REPAIR
    # a store task still open this long after it was raised is dispatched to a technician (None: never)
    task_deadline_s: Annotated[float, Field(gt=0, le=30 * 86_400)] | None = None
    delay_s: Annotated[float, Field(ge=0, le=86_400)] = 0
    clear_delay_s: Annotated[float, Field(ge=0, le=86_400)] = 0
    description: Annotated[str, Field(max_length=300)] = ""
    provenance: str = ""
    enabled: bool = True

    @model_validator(mode="after")
    def _deadline_for_tasks(self) -> Self:
        if self.task_deadline_s is not None and self.ticket_class is not TicketClass.STORE_TASK:
            raise ValueError(f"condition {self.name!r}: task_deadline_s applies to store tasks only "
                             f"(ticket_class is {self.ticket_class.value})")
        return self


class PeripheralPoint(_Strict):
    """One reading of a peripheral (derived from the profile, not written in the YAML)."""

    name: Name
    type: Literal["bool", "int"]
    unit: str = ""
    description: str = ""
    provenance: str = ""


class PeripheralProfile(_Strict):
    model: ModelId
    manufacturer: str
    description: str = ""
    kind: Literal["printer", "bill_validator"]
    protocol: Literal["escpos", "cctalk"]
    serial: PeripheralSerial = PeripheralSerial()
    timeout_ms: Annotated[int, Field(ge=20, le=10_000)] = 500  # per request
    default_address: Annotated[int, Field(ge=1, le=255)] | None = None  # ccTalk: the factory address
    offline: OfflineSettings = OfflineSettings()
    conditions: Annotated[list[Condition], Field(min_length=1)]
    provenance: str = ""

    @property
    def points(self) -> tuple[PeripheralPoint, ...]:
        """The readings a device of this profile yields: one boolean per condition (+ the ccTalk
        event counter)."""
        first = {c.name: c for c in reversed(self.conditions)}
        points = [
            PeripheralPoint(name=n, type="bool", description=first[n].description, provenance=first[n].provenance)
            for n in dict.fromkeys(c.name for c in self.conditions)
        ]
        if self.protocol == "cctalk":
            points.append(PeripheralPoint(name="event_counter", type="int", provenance="ccTalk header 159 [KOSTA]",
                                          description="Event counter: 0 after reset, 1..255, wraps to 1"))
        return tuple(points)

    @property
    def rules(self) -> list[Condition]:
        """The conditions are this profile's fault rules (same role as DeviceProfile.rules)."""
        return list(self.conditions)

    def condition_type(self, name: str) -> ConditionType:
        if self.protocol == "cctalk" and name in CCTALK_EVENT_CONDITIONS:
            return ConditionType.EVENT
        return ConditionType.STATUS

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        known = ESCPOS_CONDITIONS if self.protocol == "escpos" else CCTALK_CONDITIONS
        expected_kind = "printer" if self.protocol == "escpos" else "bill_validator"
        if self.kind != expected_kind:
            raise ValueError(f"a {self.protocol} profile is a {expected_kind}, not a {self.kind}")
        for condition in self.conditions:
            if condition.name not in known:
                raise ValueError(
                    f"condition {condition.name!r} is not a {self.protocol} condition "
                    f"(known: {', '.join(sorted(known))})"
                )
        codes = [c.code for c in self.conditions]
        if len(codes) != len(set(codes)):
            raise ValueError(f"duplicate fault codes: {sorted({c for c in codes if codes.count(c) > 1})}")
        if "device_offline" in codes:
            raise ValueError("'device_offline' is raised by the edge itself; a condition may not use it")
        if self.protocol == "escpos" and self.default_address is not None:
            raise ValueError("ESC/POS has no addresses; 'default_address' applies to ccTalk")
        return self

    @property
    def address(self) -> int:
        """The ccTalk address a device of this model answers on unless configured otherwise."""
        return self.default_address or int(DefaultAddress.BILL_VALIDATOR)
