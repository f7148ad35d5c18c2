"""Fixtures for the simulator unit tests: the built-in profiles and fresh devices."""

from __future__ import annotations

import pytest

from device_profiles import ProfileRegistry
from simulators.device import SimulatedDevice


@pytest.fixture(scope="session")
def registry() -> ProfileRegistry:
    return ProfileRegistry.load()


@pytest.fixture
def dixell(registry: ProfileRegistry) -> SimulatedDevice:
    return SimulatedDevice("case-01", 1, registry.get("dixell-xr75cx"))


@pytest.fixture
def danfoss(registry: ProfileRegistry) -> SimulatedDevice:
    return SimulatedDevice("case-02", 2, registry.get("danfoss-ak-cc55"))


@pytest.fixture
def lane(registry: ProfileRegistry) -> SimulatedDevice:
    return SimulatedDevice("lane-01", 1, registry.get("storeguard-sco-lane"))
