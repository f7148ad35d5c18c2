"""Edge configuration (edge layer): buses and the device instances on them.

A device instance only says which bus, which unit id and which profile; everything else
comes from the profile, with optional per-device rule overrides (thresholds pushed later
by central land here too).
"""

from __future__ import annotations

from typing import Annotated, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

from device_profiles.schema import SerialSettings

DeviceId = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_.-]{0,63}$")]
BusName = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_.-]{0,63}$")]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class RuleOverride(_Strict):
    """Per-device changes to one of the profile's rules (the numbers central may push). The
    merged rule is validated again, so a field the rule's type does not take is refused."""

    limit: float | None = None
    clear: float | None = None
    delay_s: Annotated[float, Field(ge=0, le=86_400)] | None = None
    clear_delay_s: Annotated[float, Field(ge=0, le=86_400)] | None = None
    enabled: bool | None = None
    window_s: Annotated[float, Field(gt=0, le=90 * 86_400)] | None = None  # rate, creep
    baseline_s: Annotated[float, Field(gt=0, le=90 * 86_400)] | None = None  # creep
    min_history_s: Annotated[float, Field(ge=0, le=90 * 86_400)] | None = None  # creep
    max_interval_s: Annotated[float, Field(gt=0, le=90 * 86_400)] | None = None  # not_seen


class DeviceConfig(_Strict):
    id: DeviceId
    unit: Annotated[int, Field(ge=0, le=255)]  # Modbus 0..247 (checked per bus); ccTalk address 2..255
    profile: str
    location: Annotated[str, Field(max_length=200)] = ""
    rules: dict[str, RuleOverride] = Field(default_factory=dict)


PERIPHERAL_TRANSPORTS = ("escpos", "cctalk")
STORE_POWER_ID = "store-power"  # the device id of a store_power_loss fault
MODBUS_MAX_UNIT = 247


class BusConfig(_Strict):
    """One physical bus: a serial line (RTU), a TCP endpoint, or RTU tunnelled over TCP; or a
    serial POS peripheral port: `escpos` (one receipt printer, unit 1) or `cctalk` (devices
    by ccTalk address in `unit`; `echo` says whether the line echoes the host's bytes)."""

    name: BusName
    transport: Literal["rtu", "tcp", "rtu_over_tcp", "escpos", "cctalk"]
    port: str | None = None  # serial device path, for rtu, escpos and cctalk
    echo: Literal["auto", "on", "off"] = "auto"  # cctalk: a single-wire bus reads back each request
    serial: SerialSettings | None = None  # overrides the profiles' serial defaults
    host: str | None = None  # for tcp / rtu_over_tcp
    tcp_port: Annotated[int, Field(ge=1, le=65535)] | None = None
    poll_interval_s: Annotated[float, Field(gt=0, le=3600)] = 5.0
    timeout_ms: Annotated[int, Field(ge=20, le=10_000)] | None = None  # overrides the profiles'
    devices: Annotated[list[DeviceConfig], Field(min_length=1)]

    @model_validator(mode="after")
    def _endpoint(self) -> Self:
        if self.transport in ("rtu", *PERIPHERAL_TRANSPORTS) and not self.port:
            raise ValueError(
                f"bus {self.name!r}: an {self.transport} bus needs 'port' (the serial device, e.g. /dev/ttyUSB0)"
            )
        if self.transport != "cctalk" and self.echo != "auto":
            raise ValueError(f"bus {self.name!r}: 'echo' applies to cctalk buses only")
        self._check_units()
        if self.transport in ("tcp", "rtu_over_tcp") and (not self.host or not self.tcp_port):
            raise ValueError(f"bus {self.name!r}: a {self.transport} bus needs 'host' and 'tcp_port'")
        units = [d.unit for d in self.devices]
        if len(units) != len(set(units)):
            raise ValueError(f"bus {self.name!r}: two devices share a unit id")
        return self

    def _check_units(self) -> None:
        for d in self.devices:
            if self.transport == "escpos" and (d.unit != 1 or len(self.devices) != 1):
                raise ValueError(f"bus {self.name!r}: an escpos port has one printer, with unit 1")
            if self.transport == "cctalk" and d.unit < 2:
                raise ValueError(f"bus {self.name!r}: device {d.id!r}: ccTalk address {d.unit} (1 is the host)")
            if self.transport not in PERIPHERAL_TRANSPORTS and d.unit > MODBUS_MAX_UNIT:
                raise ValueError(f"bus {self.name!r}: device {d.id!r}: Modbus unit {d.unit} is above 247")


class EdgeConfig(_Strict):
    buses: Annotated[list[BusConfig], Field(min_length=1)]

    @model_validator(mode="after")
    def _unique(self) -> Self:
        names = [b.name for b in self.buses]
        if len(names) != len(set(names)):
            raise ValueError("bus names must be unique")
        ids = [d.id for b in self.buses for d in b.devices]
        if len(ids) != len(set(ids)):
            dupes = sorted({i for i in ids if ids.count(i) > 1})
            raise ValueError(f"device ids must be unique in a store: {dupes}")
        # A silent bus is reported under its bus name, a store without power as STORE_POWER_ID
        # (edge.correlation): neither may be a device's id too.
        clashes = sorted((set(names) | {STORE_POWER_ID}) & set(ids))
        if clashes:
            raise ValueError(
                f"{clashes[0]!r} is a device id and a bus name (or the reserved {STORE_POWER_ID!r}); "
                "bus faults are reported under the bus name, so rename one"
            )
        return self
