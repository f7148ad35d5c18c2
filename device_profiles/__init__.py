"""Device profiles (data, not code): the YAML schema of a device model and its loader."""

from device_profiles.loader import AnyProfile, ProfileError, ProfileKindError, ProfileRegistry, load_profile
from device_profiles.peripheral import Condition, PeripheralProfile, PeripheralSerial
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
    "AnyProfile",
    "Condition",
    "DeviceProfile",
    "ModbusSettings",
    "Point",
    "PeripheralProfile",
    "PeripheralSerial",
    "ProfileError",
    "ProfileKindError",
    "ProfileRegistry",
    "Rule",
    "RuleType",
    "SerialSettings",
    "Suppression",
    "load_profile",
]
