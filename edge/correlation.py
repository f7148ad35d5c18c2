"""Correlated failures (edge layer): a silent bus or a store without power is one fault, not N.

DEVICES.md §4: "whole segment silent => bus/power/gateway, single node => device/wiring/
address"; "power loss: all nodes offline together + UPS OB ... correlate". The Edge hands
every poll's fault changes through ``Correlator.polled`` on their way to the sink:

* ``bus_offline`` (device_id = the bus name): when a device of a bus with >= 2 devices
  reaches its offline threshold while every device of that bus is failing, and at least two
  of them were not already reported offline, one bus fault is raised and the device_offline
  raises of that bus are held back while it is active. The first answer on the bus clears
  it; every held device is then probed at once, and one that fails again gets its own
  device_offline (a held raise that comes back online is never reported at all).
* ``store_power_loss`` (device_id ``store-power``): when every device of the store that is
  not a UPS is failing (>= 2 of them newly) and a UPS reports on battery, or every UPS is
  silent too. It holds back the bus faults and the device faults. The first answer from a
  device that is not a UPS clears it; a bus still silent after that (every device failed
  again since) gets its bus_offline then. A bus fault raised a moment before a UPS poll
  completed the picture is cleared as superseded by the store fault.

Restored after a restart (``restore``): an open bus_offline or store_power_loss resumes
(the next silence is held under it, the first answer clears it), or is reported cleared by
the Edge when its bus or the store's UPS is no longer configured.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from enum import StrEnum

from edge.config import STORE_POWER_ID
from edge.device import OFFLINE_FAULT, DeviceRuntime
from edge.errors import EdgeConfigError
from edge.metrics import BusFaultMetrics, BusMetrics, StoreFaultMetrics
from edge.model import FaultChange
from protocols.mqtt.messages import FaultClass, FaultState, Quality, Severity, TicketClass

logger = logging.getLogger(__name__)

BUS_FAULT = "bus_offline"
STORE_FAULT = "store_power_loss"
STORE_DEVICE_ID = STORE_POWER_ID
BUS_MODEL = "bus"
STORE_MODEL = "store"
UPS_KIND = "ups"
ON_BATTERY_ROLE = "ups_on_battery"
CORRELATED_CODES = frozenset({BUS_FAULT, STORE_FAULT})
_MAX_TEXT = 400

Evidence = dict[str, float | int | bool | str | None]


class Phase(StrEnum):
    NORMAL = "normal"
    RAISED = "raised"  # bus_offline sent downstream
    HELD = "held"  # silent, its fault held back under store_power_loss
    RECHECK = "recheck"  # the store came back: raise bus_offline if still silent


class Holder(StrEnum):
    BUS = "bus"
    STORE = "store"


@dataclass(slots=True)
class _Held:
    holder: Holder
    release_since: float | None = None  # holder recovered: the next failure after this reports


@dataclass(slots=True)
class _Bus:
    metrics: BusMetrics
    devices: list[DeviceRuntime]
    state: BusFaultMetrics
    phase: Phase = Phase.NORMAL
    fault: FaultChange | None = None  # the raise (sent, held or restored)
    silent_since: float | None = None
    recheck_since: float | None = None


def _failing(device: DeviceRuntime) -> bool:
    return device.offline or device.metrics.consecutive_failures > 0


def _is_ups(device: DeviceRuntime) -> bool:
    return device.profile.kind == UPS_KIND


def _text(parts: Iterable[str]) -> str:
    text = ", ".join(parts)
    return text if len(text) <= _MAX_TEXT else text[: _MAX_TEXT - 3] + "..."


class Correlator:
    """Turns the device_offline faults of a silent bus or a dark store into one fault."""

    def __init__(self, buses: Sequence[tuple[BusMetrics, list[DeviceRuntime]]]) -> None:
        self._buses = {m.bus: _Bus(m, devices, BusFaultMetrics(bus=m.bus)) for m, devices in buses}
        self._bus_of = {d.id: bus for bus in self._buses.values() for d in bus.devices}
        self._devices = [d for bus in self._buses.values() for d in bus.devices]
        self._ups = [d for d in self._devices if _is_ups(d)]
        self._others = [d for d in self._devices if not _is_ups(d)]
        self._held: dict[str, _Held] = {}
        self._last_failed: dict[str, float] = {}
        self._store: FaultChange | None = None
        self._store_since: float | None = None
        self.store_metrics = StoreFaultMetrics()
        for device in self._devices:
            clash = CORRELATED_CODES & {rule.code for rule in device.profile.rules}
            if clash:
                raise EdgeConfigError(
                    f"device {device.id!r}: profile {device.profile.model} may not define a rule named {min(clash)!r}"
                )

    # --- the poll path -------------------------------------------------------------------------

    def polled(self, device: DeviceRuntime, changes: list[FaultChange], now: float, at: datetime) -> list[FaultChange]:
        """The changes to report for this poll: ``changes`` less the held ones, plus bus/store changes."""
        bus = self._bus_of.get(device.id)
        if bus is None:
            return changes  # not on a Modbus bus of this store (a peripheral port)
        out: list[FaultChange] = []
        if device.metrics.consecutive_failures == 0:
            self._answered(device, bus, now, at, out)
        else:
            self._last_failed[device.id] = now
            self._failed(device, bus, now, at, out)
        for change in changes:
            if change.fault_code == OFFLINE_FAULT:
                if change.state is FaultState.RAISED and self._hold(device, bus, now, at, out):
                    continue
                if change.state is FaultState.CLEARED and self._held.pop(device.id, None) is not None:
                    continue  # its raise was never reported
            out.append(change)
        if _is_ups(device) and self._store is None and self._any_silence():
            self._check_store(now, at, out)
        return out

    def _answered(self, device: DeviceRuntime, bus: _Bus, now: float, at: datetime, out: list[FaultChange]) -> None:
        if self._store is not None and not _is_ups(device):
            out.append(self._store_cleared(device, now, at))
            for other in self._buses.values():
                if other.phase is Phase.HELD:
                    other.phase, other.recheck_since = Phase.RECHECK, now
            self._release(Holder.STORE, None, now)
            self._probe_now(self._devices)
        if bus.phase is Phase.NORMAL:
            return
        if bus.phase is Phase.RAISED:
            out.append(self._bus_cleared(bus, device, now, at))
            logger.info("bus %s answers again (%s); bus_offline cleared", bus.metrics.bus, device.id)
        bus.phase, bus.fault, bus.silent_since, bus.recheck_since = Phase.NORMAL, None, None, None
        self._release(Holder.BUS, bus, now)
        self._probe_now(bus.devices)

    def _failed(self, device: DeviceRuntime, bus: _Bus, now: float, at: datetime, out: list[FaultChange]) -> None:
        held = self._held.get(device.id)
        if held is not None and held.release_since is not None and now > held.release_since:
            del self._held[device.id]
            if device.offline_fault is not None:
                out.append(device.offline_fault)  # silent on its own, after its bus or store came back
        if bus.phase is Phase.RECHECK and self._store is None:
            since = bus.recheck_since if bus.recheck_since is not None else now
            if all(self._last_failed.get(d.id, -1.0) > since for d in bus.devices):
                self._raise_bus(bus, device, now, at, out)

    def _hold(self, device: DeviceRuntime, bus: _Bus, now: float, at: datetime, out: list[FaultChange]) -> bool:
        """Whether the device_offline raise of ``device`` is held back (raising a bus/store fault first)."""
        if self._store is None and not _is_ups(device) and self._store_silent(device):
            self._raise_store(device, now, at, out)
        if bus.phase is Phase.NORMAL and self._bus_silent(bus, device):
            if self._store is not None:
                bus.phase, bus.fault, bus.silent_since = Phase.HELD, self._bus_raise(bus, device, at), now
            else:
                self._raise_bus(bus, device, now, at, out)
        if bus.phase is not Phase.NORMAL:
            self._held[device.id] = _Held(Holder.BUS)
            return True
        if self._store is not None and not _is_ups(device):
            self._held[device.id] = _Held(Holder.STORE)
            return True
        return False

    def _check_store(self, now: float, at: datetime, out: list[FaultChange]) -> None:
        """After a UPS poll: a silent bus plus a UPS on battery is a power loss after all."""
        if self._store_silent(None):
            self._raise_store(None, now, at, out)

    # --- conditions ----------------------------------------------------------------------------

    def _unreported(self, devices: Iterable[DeviceRuntime], raising: DeviceRuntime | None) -> int:
        """Devices not already reported offline on their own (held raises count as unreported)."""
        return sum(1 for d in devices if d is raising or not d.offline or d.id in self._held)

    def _bus_silent(self, bus: _Bus, raising: DeviceRuntime) -> bool:
        devices = bus.devices
        return len(devices) >= 2 and all(map(_failing, devices)) and self._unreported(devices, raising) >= 2

    def _store_silent(self, raising: DeviceRuntime | None) -> bool:
        if not self._ups or len(self._others) < 2 or not all(map(_failing, self._others)):
            return False
        if self._unreported(self._others, raising) < 2:
            return False
        return any(self._on_battery(u) for u in self._ups) or all(map(_failing, self._ups))

    def _any_silence(self) -> bool:
        return bool(self._held) or any(b.phase is not Phase.NORMAL for b in self._buses.values())

    @staticmethod
    def _on_battery(ups: DeviceRuntime) -> bool:
        point = ups.profile.point_with_role(ON_BATTERY_ROLE)
        if point is None or _failing(ups):
            return False
        reading = ups.readings().get(point.name)
        return reading is not None and reading.quality is Quality.GOOD and reading.value is True

    # --- transitions ---------------------------------------------------------------------------

    def _raise_bus(self, bus: _Bus, device: DeviceRuntime, now: float, at: datetime, out: list[FaultChange]) -> None:
        bus.phase, bus.fault = Phase.RAISED, self._bus_raise(bus, device, at)
        bus.silent_since = bus.silent_since if bus.silent_since is not None else now
        bus.state.faults_raised += 1
        out.append(bus.fault)
        logger.error(
            "bus %s (%s %s) is silent: all %d devices fail; one bus_offline instead of %d device faults",
            bus.metrics.bus,
            bus.metrics.transport,
            bus.metrics.endpoint,
            len(bus.devices),
            len(bus.devices),
        )

    def _raise_store(self, device: DeviceRuntime | None, now: float, at: datetime, out: list[FaultChange]) -> None:
        self._store, self._store_since = self._store_raise(at), now
        self.store_metrics.power_losses += 1
        out.append(self._store)
        for bus in self._buses.values():
            if bus.phase is Phase.RAISED and bus.fault is not None:
                raised_at = bus.fault.occurred_at.isoformat()
                evidence: Evidence = {"reason": "superseded", "by": STORE_FAULT, "raised_at": raised_at}
                out.append(replace(bus.fault, state=FaultState.CLEARED, occurred_at=at, evidence=evidence))
                bus.phase = Phase.HELD
            elif bus.phase is Phase.RECHECK:
                bus.phase = Phase.HELD
        logger.error("store power loss: every device is silent and the UPS is on battery or silent")

    def _release(self, holder: Holder, bus: _Bus | None, now: float) -> None:
        for device_id, held in self._held.items():
            if held.holder is holder and (bus is None or self._bus_of[device_id] is bus):
                held.release_since = now

    @staticmethod
    def _probe_now(devices: Iterable[DeviceRuntime]) -> None:
        """Something came back: poll the ones in backoff next cycle instead of in up to a minute."""
        for device in devices:
            if device.next_poll_at is not None:
                device.next_poll_at = None

    # --- fault changes -------------------------------------------------------------------------

    def _bus_raise(self, bus: _Bus, device: DeviceRuntime, at: datetime) -> FaultChange:
        m = bus.metrics
        errors = sorted({d.metrics.last_error for d in bus.devices if d.metrics.last_error})
        evidence: Evidence = {
            "bus": m.bus,
            "transport": m.transport,
            "endpoint": m.endpoint,
            "devices_silent": len(bus.devices),
            "devices": _text(d.id for d in bus.devices),
            "last_error": device.metrics.last_error,
            "last_errors": _text(errors),
        }
        return FaultChange(
            device_id=m.bus,
            device_model=BUS_MODEL,
            fault_code=BUS_FAULT,
            state=FaultState.RAISED,
            severity=Severity.CRITICAL,
            fault_class=FaultClass.EQUIPMENT,
            ticket_class=TicketClass.REPAIR,
            occurred_at=at,
            description=(
                f"Whole bus {m.bus} silent: none of its {len(bus.devices)} devices answers "
                f"({m.transport} {m.endpoint}); bus, power or gateway"
            ),
            evidence=evidence,
        )

    def _bus_cleared(self, bus: _Bus, device: DeviceRuntime, now: float, at: datetime) -> FaultChange:
        assert bus.fault is not None
        silent_s = now - bus.silent_since if bus.silent_since is not None else None
        evidence: Evidence = {
            "bus": bus.metrics.bus,
            "answered_by": device.id,
            "silent_s": round(silent_s, 3) if silent_s is not None else None,
        }
        return replace(bus.fault, state=FaultState.CLEARED, occurred_at=at, evidence=evidence)

    def _store_raise(self, at: datetime) -> FaultChange:
        silent_buses = [b.metrics.bus for b in self._buses.values() if all(map(_failing, b.devices))]
        on_battery = [u.id for u in self._ups if self._on_battery(u)]
        evidence: Evidence = {
            "devices_silent": len(self._others),
            "buses_silent": _text(silent_buses),
            "ups": _text(u.id for u in self._ups),
            "ups_on_battery": _text(on_battery) or None,
            "ups_silent": all(map(_failing, self._ups)),
        }
        for role in ("battery_charge", "battery_runtime"):
            for ups in self._ups:
                point = ups.profile.point_with_role(role)
                reading = ups.readings().get(point.name) if point is not None else None
                if reading is not None and reading.quality is Quality.GOOD and isinstance(reading.value, int | float):
                    evidence[role] = reading.value
                    break
        return FaultChange(
            device_id=STORE_DEVICE_ID,
            device_model=STORE_MODEL,
            fault_code=STORE_FAULT,
            state=FaultState.RAISED,
            severity=Severity.CRITICAL,
            fault_class=FaultClass.FOOD_SAFETY,
            ticket_class=TicketClass.REPAIR,
            occurred_at=at,
            description="Store power loss: every controller silent and the UPS on battery (or silent)",
            evidence=evidence,
        )

    def _store_cleared(self, device: DeviceRuntime, now: float, at: datetime) -> FaultChange:
        assert self._store is not None
        since = self._store_since
        evidence: Evidence = {
            "answered_by": device.id,
            "outage_s": round(now - since, 3) if since is not None else None,
        }
        cleared = replace(self._store, state=FaultState.CLEARED, occurred_at=at, evidence=evidence)
        self._store, self._store_since = None, None
        logger.info("store power is back (%s answers); store_power_loss cleared", device.id)
        return cleared

    # --- state for the Edge --------------------------------------------------------------------

    def restore(self, raised: FaultChange, since: float) -> bool | None:
        """Resume a bus/store fault open from before a restart: True; False when it matches nothing
        in the config any more; None when it is not a correlated fault."""
        if raised.fault_code == BUS_FAULT:
            bus = self._buses.get(raised.device_id)
            if bus is None or len(bus.devices) < 2:
                return False
            bus.phase, bus.fault, bus.silent_since = Phase.RAISED, raised, since
            return True
        if raised.fault_code == STORE_FAULT and raised.device_id == STORE_DEVICE_ID:
            if not self._ups or len(self._others) < 2:
                return False
            self._store, self._store_since = raised, since
            return True
        return None

    def active_faults(self, device_faults: Iterable[FaultChange]) -> list[FaultChange]:
        """The devices' active faults less the held-back device_offline, plus the bus/store faults."""
        faults = [f for f in device_faults if not (f.fault_code == OFFLINE_FAULT and f.device_id in self._held)]
        faults.extend(b.fault for b in self._buses.values() if b.phase is Phase.RAISED and b.fault is not None)
        if self._store is not None:
            faults.append(self._store)
        return faults

    def bus_metrics(self) -> tuple[BusFaultMetrics, ...]:
        """Copies of the per-bus correlation state (for /metrics)."""
        self._update_metrics()
        return tuple(replace(b.state) for b in self._buses.values())

    def store_fault_metrics(self) -> StoreFaultMetrics:
        self._update_metrics()
        return replace(self.store_metrics)

    def _update_metrics(self) -> None:
        held_by: dict[str, int] = {}
        store_held = 0
        for device_id, held in self._held.items():
            if held.holder is Holder.STORE:
                store_held += 1
            else:
                name = self._bus_of[device_id].metrics.bus
                held_by[name] = held_by.get(name, 0) + 1
        for bus in self._buses.values():
            s = bus.state
            s.silent = len(bus.devices) >= 1 and all(map(_failing, bus.devices))
            s.fault_active = bus.phase is Phase.RAISED
            s.held = bus.phase in (Phase.HELD, Phase.RECHECK)
            s.devices_held = held_by.get(bus.metrics.bus, 0)
        self.store_metrics.power_loss_active = self._store is not None
        self.store_metrics.devices_held = store_held
