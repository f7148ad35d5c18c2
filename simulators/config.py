"""Simulator configuration (simulators layer): buses, devices, fault scenario, control API.

Time: `time_scale` simulated seconds pass per real second in the device models (thermal
drift, defrost cycles, controller alarm delays). Scenario `at_s` and fault `duration_s` are
real seconds since start, so they line up with the edge's real-time rule delays.
Relative paths (`link`, `profiles_dirs`) are taken from the config file's directory.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any, Literal, Self

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator, model_validator

from device_profiles.loader import ProfileError, ProfileRegistry
from device_profiles.schema import DeviceProfile
from simulators.errors import FaultError, SimulatorConfigError
from simulators.faults import Fault, check_exception_code, faults_for_kind
from simulators.lane import LaneParams
from simulators.peripherals.faults import peripheral_faults
from simulators.ups import UpsParams
from simulators.thermal import ThermalParams

DeviceId = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_.-]{0,63}$")]
BusName = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_.-]{0,63}$")]
Baudrate = Literal[1200, 2400, 4800, 9600, 19200, 38400, 57600, 115200]
Port = Annotated[int, Field(ge=0, le=65535)]  # 0 = pick a free port
InitialValue = bool | int | float | str


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _relative_to_config(path: Path, info: ValidationInfo) -> Path:
    base = (info.context or {}).get("base_dir")
    return path if path.is_absolute() or base is None else Path(base) / path


class DeviceSpec(_Strict):
    id: DeviceId
    unit: Annotated[int, Field(ge=0, le=247)]  # 0 only on TCP: on RTU it is the broadcast address
    profile: str
    setpoint: float | None = None  # refrigeration controllers: initial setpoint, °C
    thermal: ThermalParams | None = None  # refrigeration controllers: case and controller parameters
    lane: LaneParams | None = None  # self-checkout lanes: customer cycle
    ups: UpsParams | None = None  # UPSs: load, battery runtime, low-battery levels
    initial: dict[str, InitialValue] = Field(default_factory=dict)  # points no model writes, e.g. machine_on


class RtuBusSpec(_Strict):
    """A serial bus served on a pseudo-terminal; `link` is symlinked to its slave side."""

    name: BusName
    transport: Literal["rtu"]
    link: Path
    baudrate: Baudrate = 9600
    wire_timing: bool = False  # delay answers by the real wire time (bus benchmarks)
    turnaround_ms: Annotated[float, Field(ge=0, le=1000)] = 5.0  # device think time with wire_timing
    devices: Annotated[list[DeviceSpec], Field(min_length=1)]

    @field_validator("link")
    @classmethod
    def _link_base(cls, link: Path, info: ValidationInfo) -> Path:
        return _relative_to_config(link, info)

    @model_validator(mode="after")
    def _no_broadcast_unit(self) -> Self:
        for device in self.devices:
            if device.unit == 0:
                raise ValueError(f"device {device.id!r}: unit 0 is the RTU broadcast address, use 1..247")
        return self


class TcpBusSpec(_Strict):
    """A Modbus TCP endpoint serving every device on it by unit id."""

    name: BusName
    transport: Literal["tcp"]
    host: str = "127.0.0.1"
    port: Port = 0
    devices: Annotated[list[DeviceSpec], Field(min_length=1)]


class PeripheralDeviceSpec(_Strict):
    """A serial POS peripheral: `unit` is the ccTalk address (a printer has no address: 1)."""

    id: DeviceId
    unit: Annotated[int, Field(ge=1, le=255)] = 1
    profile: str


class EscPosBusSpec(_Strict):
    """One ESC/POS receipt printer served on a pseudo-terminal symlinked at `link`."""

    name: BusName
    transport: Literal["escpos"]
    link: Path
    devices: Annotated[list[PeripheralDeviceSpec], Field(min_length=1, max_length=1)]

    @field_validator("link")
    @classmethod
    def _link_base(cls, link: Path, info: ValidationInfo) -> Path:
        return _relative_to_config(link, info)


class CcTalkBusSpec(_Strict):
    """ccTalk devices on a pseudo-terminal; `echo` writes every host byte back like a real bus."""

    name: BusName
    transport: Literal["cctalk"]
    link: Path
    echo: bool = False
    devices: Annotated[list[PeripheralDeviceSpec], Field(min_length=1)]

    @field_validator("link")
    @classmethod
    def _link_base(cls, link: Path, info: ValidationInfo) -> Path:
        return _relative_to_config(link, info)

    @model_validator(mode="after")
    def _addresses(self) -> Self:
        for device in self.devices:
            if device.unit == 1:
                raise ValueError(f"device {device.id!r}: ccTalk address 1 is the host's")
        return self


ModbusBusSpec = RtuBusSpec | TcpBusSpec
PeripheralBusSpec = EscPosBusSpec | CcTalkBusSpec
BusSpec = Annotated[RtuBusSpec | TcpBusSpec | EscPosBusSpec | CcTalkBusSpec, Field(discriminator="transport")]


class ControlSpec(_Strict):
    enabled: bool = True
    host: str = "127.0.0.1"
    port: Port = 0


class ScenarioStep(_Strict):
    at_s: Annotated[float, Field(ge=0)]
    device: DeviceId
    fault: Fault
    duration_s: Annotated[float, Field(gt=0)] | None = None
    code: int | None = None  # exception code, for fault 'exception'

    @model_validator(mode="after")
    def _code(self) -> Self:
        if self.code is not None:
            if self.fault is not Fault.EXCEPTION:
                raise ValueError(f"'code' applies to the 'exception' fault only, not {self.fault.value!r}")
            try:
                check_exception_code(self.code)
            except FaultError as exc:
                raise ValueError(str(exc)) from exc
        return self


class SimulatorConfig(_Strict):
    time_scale: Annotated[float, Field(gt=0, le=100_000)] = 1.0
    tick_s: Annotated[float, Field(gt=0, le=60)] = 0.5
    control: ControlSpec = ControlSpec()
    buses: Annotated[list[BusSpec], Field(min_length=1)]
    scenario: list[ScenarioStep] = Field(default_factory=list)
    profiles_dirs: list[Path] = Field(default_factory=list)

    @field_validator("profiles_dirs")
    @classmethod
    def _dirs_base(cls, dirs: list[Path], info: ValidationInfo) -> list[Path]:
        return [_relative_to_config(d, info) for d in dirs]

    @model_validator(mode="after")
    def _unique(self) -> Self:
        names = [b.name for b in self.buses]
        if len(names) != len(set(names)):
            raise ValueError(f"bus names must be unique: {sorted({n for n in names if names.count(n) > 1})}")
        ids = [d.id for _, d in self.device_specs()] + [d.id for _, d in self.peripheral_specs()]
        if len(ids) != len(set(ids)):
            raise ValueError(f"device ids must be unique: {sorted({i for i in ids if ids.count(i) > 1})}")
        for bus in self.buses:
            units = [d.unit for d in bus.devices]
            if len(units) != len(set(units)):
                raise ValueError(f"bus {bus.name!r}: two devices share a unit id")
        links = [b.link for b in self.buses if isinstance(b, RtuBusSpec | EscPosBusSpec | CcTalkBusSpec)]
        if len(links) != len(set(links)):
            raise ValueError("two serial buses share a link path")
        endpoints = [(b.host, b.port) for b in self.buses if isinstance(b, TcpBusSpec) and b.port]
        if len(endpoints) != len(set(endpoints)):
            raise ValueError("two tcp buses share a host and port")
        for i, step in enumerate(self.scenario):
            if step.device not in ids:
                raise ValueError(f"scenario[{i}]: unknown device {step.device!r}")
        return self

    def device_specs(self) -> Iterator[tuple[ModbusBusSpec, DeviceSpec]]:
        """The Modbus devices (RTU and TCP buses); see `peripheral_specs` for the others."""
        for bus in self.buses:
            if isinstance(bus, RtuBusSpec | TcpBusSpec):
                for device in bus.devices:
                    yield bus, device

    def peripheral_specs(self) -> Iterator[tuple[PeripheralBusSpec, PeripheralDeviceSpec]]:
        """The serial POS peripherals (escpos and cctalk buses)."""
        for bus in self.buses:
            if isinstance(bus, EscPosBusSpec | CcTalkBusSpec):
                for device in bus.devices:
                    yield bus, device

    def _check_peripherals(self, registry: ProfileRegistry, kinds: dict[str, str]) -> set[str]:
        """Each peripheral's profile speaks its bus's protocol; returns the peripherals' ids."""
        for bus, spec in self.peripheral_specs():
            where = f"buses[{bus.name}].devices[{spec.id}].profile"
            if spec.profile not in registry:
                known = ", ".join(registry.models())
                raise ValueError(f"{where}: unknown device profile {spec.profile!r} (known: {known})")
            profile = registry.get(spec.profile)
            if profile.protocol != bus.transport:
                raise ValueError(f"{where}: profile {profile.model} speaks {profile.protocol}, not {bus.transport}")
            kinds[spec.id] = profile.kind
        return {spec.id for _, spec in self.peripheral_specs()}

    def check_profiles(self, registry: ProfileRegistry) -> None:
        """Check what only the profiles know. Raises ValueError('<where>: <reason>')."""
        kinds: dict[str, str] = {}
        for bus, spec in self.device_specs():
            where = f"buses[{bus.name}].devices[{spec.id}]"
            if spec.profile not in registry:
                raise ValueError(
                    f"{where}.profile: unknown device profile {spec.profile!r} (known: {', '.join(registry.models())})"
                )
            profile = registry.get(spec.profile)
            if not isinstance(profile, DeviceProfile):
                raise ValueError(f"{where}.profile: profile {profile.model} speaks {profile.protocol}, not modbus")
            kinds[spec.id] = profile.kind
            for name, value in spec.initial.items():
                if name not in {p.name for p in profile.points}:
                    raise ValueError(f"{where}.initial.{name}: profile {profile.model!r} has no such point")
                if isinstance(value, str) and value not in {
                    *profile.point(name).enum.values(),
                    *profile.point(name).sentinels.values(),
                }:
                    raise ValueError(f"{where}.initial.{name}: {value!r} is not a value name of the point")
            refrigeration = profile.kind == "refrigeration_controller"
            if not refrigeration and (spec.setpoint is not None or spec.thermal is not None):
                raise ValueError(f"{where}: 'setpoint' and 'thermal' apply to refrigeration controllers only")
            if profile.kind != "self_checkout_lane" and spec.lane is not None:
                raise ValueError(f"{where}.lane: applies to self-checkout lanes only")
            if profile.kind != "ups" and spec.ups is not None:
                raise ValueError(f"{where}.ups: applies to UPSs only")
        peripherals = self._check_peripherals(registry, kinds)
        for i, step in enumerate(self.scenario):
            kind = kinds[step.device]
            if step.fault not in (peripheral_faults(kind) if step.device in peripherals else faults_for_kind(kind)):
                raise ValueError(f"scenario[{i}].fault: {step.fault.value!r} does not apply to a {kinds[step.device]}")

    @classmethod
    def parse(cls, raw: object, source: Path | str, *, registry: ProfileRegistry | None = None) -> SimulatorConfig:
        """Validate a loaded YAML document; relative paths resolve against `source`'s directory."""
        if not isinstance(raw, dict):
            raise SimulatorConfigError(str(source), "config", "the file must hold a YAML mapping")
        try:
            config = cls.model_validate(raw, context={"base_dir": Path(source).parent})
        except ValidationError as exc:
            first = exc.errors()[0]
            reason = first["msg"].removeprefix("Value error, ")
            raise SimulatorConfigError(str(source), _where(raw, tuple(first["loc"])), reason) from exc
        try:
            config.check_profiles(registry or ProfileRegistry.load(config.profiles_dirs))
        except ProfileError as exc:
            raise SimulatorConfigError(str(source), "profiles_dirs", str(exc)) from exc
        except ValueError as exc:
            where, _, reason = str(exc).partition(": ")
            raise SimulatorConfigError(str(source), where, reason) from exc
        return config

    @classmethod
    def load(cls, path: Path | str, *, registry: ProfileRegistry | None = None) -> SimulatorConfig:
        path = Path(path)
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise SimulatorConfigError(str(path), "file", f"cannot read: {exc.strerror}") from exc
        try:
            raw = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise SimulatorConfigError(str(path), "yaml", str(exc).replace("\n", " ")) from exc
        return cls.parse(raw, path, registry=registry)


def _where(raw: Any, loc: tuple[int | str, ...]) -> str:
    """A readable field path: buses and devices by name/id ('buses[lanes].devices[lane-01].unit')."""
    parts: list[str] = []
    node = raw
    for element in loc:
        if isinstance(element, int) and isinstance(node, list):
            item = node[element] if element < len(node) else None
            label = (item.get("name") or item.get("id")) if isinstance(item, dict) else None
            index = f"[{label or element}]"
            if parts:
                parts[-1] += index
            else:
                parts.append(index)
            node = item
        elif isinstance(node, dict) and element not in node and element in ("rtu", "tcp", "escpos", "cctalk"):
            continue  # pydantic's discriminator tag, not a field
        else:
            parts.append(str(element))
            node = node.get(element) if isinstance(node, dict) else None
    return ".".join(parts) or "config"
