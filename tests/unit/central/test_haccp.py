"""Which points the HACCP log keeps, and how a poll and the intervals are read (no database)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from central.auth.models import Role, User
from central.errors import PermissionDeniedError
from central.telemetry import haccp
from central.telemetry.views import authorize
from device_profiles import ProfileRegistry
from protocols.mqtt.messages import Quality, TelemetryPoint

T0 = datetime(2026, 1, 5, 8, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def profiles() -> ProfileRegistry:
    return ProfileRegistry.load()


@pytest.mark.parametrize(("model", "probes"), [
    ("dixell-xr75cx", {"air_temp": 8.0}),
    ("carel-ir33-wbref", {"probe1_temp": 8.0}),
    ("danfoss-ekc-202", {"air_on_temp": None, "air_off_temp": 8.0}),
    ("danfoss-ak-cc55", {"air_on_temp": None, "air_off_temp": 8.0}),
    ("eliwell-idplus-902", {"ai1_temp": 8.0}),
])
def test_the_food_probes_of_each_refrigeration_profile(profiles: ProfileRegistry, model: str,
                                                      probes: dict[str, float | None]) -> None:
    spec = haccp.spec_for(profiles.get(model))
    assert spec is not None
    assert {p.point: p.limit for p in spec.probes} == probes
    assert spec.defrost_points or spec.state_points  # every one says when it defrosts


@pytest.mark.parametrize("model", ["storeguard-sco-lane", "apc-smart-ups-nmc2", "epson-tm-t88-escpos"])
def test_other_devices_have_no_log(profiles: ProfileRegistry, model: str) -> None:
    assert haccp.spec_for(profiles.get(model)) is None


def _poll(**values: Any) -> dict[str, TelemetryPoint]:
    return {name: TelemetryPoint(device_id="c", point=name, value=value) for name, value in values.items()}


def test_a_controller_state_says_defrost_and_door(profiles: ProfileRegistry) -> None:
    spec = haccp.spec_for(profiles.get("danfoss-ak-cc55"))
    assert spec is not None
    assert haccp.device_state(spec, _poll(u00_state="melt")).defrost
    assert haccp.device_state(spec, _poll(u00_state="door_open")).door_open
    quiet = haccp.device_state(spec, _poll(u00_state="normal", alarm_s4_error=False))
    assert not (quiet.defrost or quiet.door_open or quiet.probe_alarm)
    assert haccp.device_state(spec, _poll(alarm_s4_error=True)).probe_alarm
    stale = {"alarm_s4_error": TelemetryPoint(device_id="c", point="alarm_s4_error", value=True, quality=Quality.STALE)}
    assert not haccp.device_state(spec, stale).probe_alarm  # only good readings count


def test_intervals_align_to_the_epoch() -> None:
    assert haccp.interval_start(T0 + timedelta(minutes=14, seconds=59), 900) == T0
    assert haccp.interval_start(T0 + timedelta(minutes=15), 900) == T0 + timedelta(minutes=15)
    assert haccp.interval_start(T0 + timedelta(minutes=7), 300) == T0 + timedelta(minutes=5)


def _bucket(start: datetime, minutes: int = 15) -> haccp.Bucket:
    return haccp.Bucket(point="air", unit="°C", start=start, end=start + timedelta(minutes=minutes), samples=1,
                        value_sum=4.0, value_min=4.0, value_max=4.0, high_limit=8.0, above_limit=False,
                        defrost=False, door_open=False, probe_fault=False)


def test_gaps_fill_every_interval_no_row_covers() -> None:
    rows = [_bucket(T0 + timedelta(minutes=15)), _bucket(T0 + timedelta(minutes=50), minutes=5)]  # an odd one
    out = haccp.with_gaps(rows, point="air", unit="°C", start=T0, end=T0 + timedelta(hours=1), interval_s=900,
                          limit=8.0)
    assert [(b.start.minute, b.end.minute if b.end.hour == 8 else 60, b.gap) for b in out] == [
        (0, 15, True), (15, 30, False), (30, 45, True), (45, 50, True), (50, 55, False), (55, 60, True)]
    assert out[0].mean is None and out[1].mean == 4.0


def _user(role: str, store_id: str | None = None) -> User:
    return User(username=role, display_name=role, role=Role(role), password_hash="x", store_id=store_id)


def test_who_may_read_a_stores_log() -> None:
    for role in ("admin", "dispatcher", "supervisor", "regional_manager", "facilities"):
        authorize(_user(role), "store-1")
    authorize(_user("store_staff", "store-1"), "store-1")
    for user in (_user("store_staff", "store-2"), _user("store_staff"), _user("technician")):
        with pytest.raises(PermissionDeniedError):
            authorize(user, "store-1")
