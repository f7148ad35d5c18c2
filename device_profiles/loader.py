"""Profile loading (device_profiles layer): YAML files -> validated DeviceProfile objects.

A bad profile stops start-up with the file, the point (or rule) and the reason.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import yaml
from pydantic import ValidationError

from device_profiles.peripheral import PeripheralProfile
from device_profiles.schema import DeviceProfile

# A Modbus profile (protocol: modbus, the default) or a serial peripheral's (escpos, cctalk).
AnyProfile = DeviceProfile | PeripheralProfile
PERIPHERAL_PROTOCOLS = ("escpos", "cctalk")

BUILTIN_DIR = Path(__file__).parent / "profiles"


class ProfileError(ValueError):
    """A profile file is missing, unreadable or invalid."""

    def __init__(self, path: Path | str, where: str, reason: str) -> None:
        self.path = str(path)
        self.where = where
        self.reason = reason
        super().__init__(f"{path}: {where}: {reason}")


def _where(raw: object, loc: tuple[int | str, ...]) -> str:
    """Name the point or rule an error is in ('point air_temp.scale'), not just its index."""
    listed = ("points", "rules", "conditions")
    if len(loc) >= 2 and loc[0] in listed and isinstance(loc[1], int) and isinstance(raw, dict):
        items = raw.get(loc[0])
        label = "?"
        if isinstance(items, list) and loc[1] < len(items) and isinstance(items[loc[1]], dict):
            label = str(items[loc[1]].get("name") or items[loc[1]].get("code") or f"#{loc[1]}")
        kind = {"points": "point", "rules": "rule", "conditions": "condition"}[str(loc[0])]
        rest = ".".join(str(p) for p in loc[2:])
        return f"{kind} {label}" + (f".{rest}" if rest else "")
    return ".".join(str(p) for p in loc) or "profile"


def parse_profile(raw: object, source: Path | str) -> AnyProfile:
    """Validate one profile; `protocol` picks the schema (modbus when absent)."""
    if not isinstance(raw, dict):
        raise ProfileError(source, "profile", "the file must hold a YAML mapping")
    schema: type[DeviceProfile] | type[PeripheralProfile] = (
        PeripheralProfile if raw.get("protocol") in PERIPHERAL_PROTOCOLS else DeviceProfile
    )
    try:
        return schema.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        message = first["msg"].removeprefix("Value error, ")
        raise ProfileError(source, _where(raw, tuple(first["loc"])), message) from exc


def load_profile(path: Path | str) -> AnyProfile:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ProfileError(path, "file", f"cannot read: {exc.strerror}") from exc
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ProfileError(path, "yaml", str(exc).replace("\n", " ")) from exc
    profile = parse_profile(raw, path)
    if profile.model != path.stem:
        raise ProfileError(path, "model", f"model {profile.model!r} must match the file name {path.stem!r}")
    return profile


class ProfileKindError(TypeError):
    """A profile exists but speaks another protocol than the caller needs."""


class ProfileRegistry:
    """Profiles by model id: the built-in ones plus any extra directories (later wins)."""

    def __init__(self, profiles: Mapping[str, AnyProfile]) -> None:
        self._profiles = dict(profiles)

    @classmethod
    def load(cls, extra_dirs: list[Path] | None = None) -> ProfileRegistry:
        profiles: dict[str, AnyProfile] = {}
        for directory in [BUILTIN_DIR, *(extra_dirs or [])]:
            if not Path(directory).is_dir():
                raise ProfileError(directory, "directory", "profile directory does not exist")
            for path in sorted(Path(directory).glob("*.yaml")):
                profile = load_profile(path)
                profiles[profile.model] = profile
        return cls(profiles)

    def get(self, model: str) -> AnyProfile:
        """The profile of `model`, Modbus or peripheral; see `modbus()` / `peripheral()` for one kind."""
        try:
            return self._profiles[model]
        except KeyError:
            known = ", ".join(sorted(self._profiles)) or "none"
            raise KeyError(f"unknown device profile {model!r} (known: {known})") from None

    def modbus(self, model: str) -> DeviceProfile:
        """The Modbus profile of `model`; ProfileKindError when it speaks a peripheral protocol."""
        profile = self.get(model)
        if not isinstance(profile, DeviceProfile):
            raise ProfileKindError(f"profile {model} speaks {profile.protocol}, not modbus")
        return profile

    def peripheral(self, model: str) -> PeripheralProfile:
        """The peripheral profile of `model`; ProfileKindError when it is a Modbus profile."""
        profile = self.get(model)
        if not isinstance(profile, PeripheralProfile):
            raise ProfileKindError(f"profile {model} speaks {profile.protocol}, not escpos or cctalk")
        return profile

    def __contains__(self, model: str) -> bool:
        return model in self._profiles

    def models(self) -> list[str]:
        return sorted(self._profiles)
