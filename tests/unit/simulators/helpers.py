"""Helpers shared by the simulator unit tests."""

from __future__ import annotations

from device_profiles import DeviceProfile
from simulators.config import SimulatorConfig


def with_roles(profile: DeviceProfile, roles: dict[str, str]) -> DeviceProfile:
    """The profile with extra roles on some points (roles the shipped profiles do not carry yet)."""
    points = [p.model_copy(update={"role": roles[p.name]}) if p.name in roles else p for p in profile.points]
    return DeviceProfile.model_validate({**profile.model_dump(), "points": [p.model_dump() for p in points]})


def config() -> SimulatorConfig:
    """Two cases on an RTU bus and a lane on TCP; built in memory, never served."""
    return SimulatorConfig.model_validate(
        {
            "time_scale": 60,
            "buses": [
                {
                    "name": "rs485-1",
                    "transport": "rtu",
                    "link": "/tmp/unused",
                    "devices": [
                        {
                            "id": "case-01",
                            "unit": 1,
                            "profile": "dixell-xr75cx",
                            "setpoint": 4.0,
                            "initial": {"machine_on": True},
                        },
                        {"id": "case-02", "unit": 2, "profile": "danfoss-ak-cc55"},
                    ],
                },
                {
                    "name": "lanes",
                    "transport": "tcp",
                    "devices": [{"id": "lane-01", "unit": 1, "profile": "storeguard-sco-lane"}],
                },
            ],
        }
    )
