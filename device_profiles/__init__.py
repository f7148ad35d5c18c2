"""Device profiles (data, not code): the YAML schema of a device model and its loader."""

from device_profiles.loader import ProfileError, ProfileRegistry, load_profile
from device_profiles.schema import (
    DeviceProfile,
    ModbusSettings,
    Point,
    Rule,
    RuleType,
    SerialSettings,
    Suppression,
)

__all__ = [
    "DeviceProfile",
    "ModbusSettings",
    "Point",
    "ProfileError",
    "ProfileRegistry",
    "Rule",
    "RuleType",
    "SerialSettings",
    "Suppression",
    "load_profile",
]
