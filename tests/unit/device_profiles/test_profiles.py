"""Profile schema and loader: the built-in profiles, and bad profiles named precisely."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from device_profiles import ProfileError, ProfileRegistry, RuleType, load_profile
from device_profiles.loader import BUILTIN_DIR
from protocols.modbus import RawType, Table
from protocols.mqtt.messages import TicketClass


def test_builtin_profiles_load_with_their_real_register_maps() -> None:
    registry = ProfileRegistry.load()
    assert {"dixell-xr75cx", "danfoss-ak-cc55", "storeguard-sco-lane"} <= set(registry.models())

    dixell = registry.get("dixell-xr75cx")
    air = dixell.point("air_temp")
    assert (air.table, air.address, air.type, air.scale) == (Table.HOLDING, 256, RawType.INT16, 0.1)
    assert air.sentinels[0x8000] == "probe_fault"
    assert dixell.modbus.max_registers_per_read == 1
    assert (dixell.modbus.serial.baudrate, dixell.modbus.serial.parity) == (9600, "N")

    danfoss = registry.get("danfoss-ak-cc55")
    assert danfoss.modbus.serial.parity == "E"
    u00 = danfoss.point("u00_state")
    assert u00.address == 2006 and u00.enum[17] == "door_open" and u00.enum[20] == "emergency_cooling"

    lane = registry.get("storeguard-sco-lane")
    tasks = {r.code for r in lane.rules if r.ticket_class is TicketClass.STORE_TASK}
    assert {"paper_near_end", "bill_stacker_full"} <= tasks
    assert lane.point("printer_offline").bit == 3


def test_every_builtin_point_says_where_it_came_from() -> None:
    for path in BUILTIN_DIR.glob("*.yaml"):
        profile = load_profile(path)
        assert profile.provenance, path
        assert all(point.provenance for point in profile.points), path


def _write(tmp_path: Path, profile: dict) -> Path:  # type: ignore[type-arg]
    path = tmp_path / f"{profile.get('model', 'bad')}.yaml"
    path.write_text(yaml.safe_dump(profile))
    return path


def _base() -> dict:  # type: ignore[type-arg]
    return {
        "model": "test-case",
        "manufacturer": "Test",
        "kind": "refrigeration_controller",
        "points": [
            {"name": "air_temp", "table": "holding", "address": 256, "scale": 0.1, "provenance": "test"},
            {"name": "door", "table": "discrete", "address": 1, "provenance": "test"},
        ],
        "rules": [{"code": "high_temperature", "type": "high_limit", "point": "air_temp", "limit": 8, "clear": 6}],
    }


def test_a_valid_custom_profile_loads(tmp_path: Path) -> None:
    profile = load_profile(_write(tmp_path, _base()))
    assert profile.rules[0].type is RuleType.HIGH_LIMIT
    assert profile.rules[0].clear_level == 6


@pytest.mark.parametrize(
    ("mutate", "where", "reason"),
    [
        (lambda p: p["points"][0].update(table="register"), "point air_temp.table", "Input should be"),
        (lambda p: p["points"][0].update(scale=0), "point air_temp", "scale must not be 0"),
        (lambda p: p["points"][1].update(bit=3), "point door", "coil and discrete points are bits"),
        (lambda p: p["rules"][0].update(clear=9), "rule high_temperature", "must not be above the high limit"),
        (lambda p: p["rules"][0].update(point="nope"), "profile", "unknown point 'nope'"),
        (lambda p: p["rules"][0].pop("limit"), "rule high_temperature", "needs 'limit'"),
        (lambda p: p["points"].append(dict(p["points"][0])), "profile", "duplicate point names"),
        (lambda p: p["rules"].append({"code": "d", "type": "flag", "point": "air_temp"}), "profile",
         "flag rules need a boolean point"),
        (lambda p: p["points"][0].update(unexpected=1), "point air_temp.unexpected", "Extra inputs"),
    ],
)
def test_bad_profiles_name_file_point_and_reason(tmp_path: Path, mutate, where: str, reason: str) -> None:  # type: ignore[no-untyped-def]
    raw = _base()
    mutate(raw)
    path = _write(tmp_path, raw)
    with pytest.raises(ProfileError) as caught:
        load_profile(path)
    assert caught.value.path == str(path)
    assert caught.value.where == where
    assert reason in caught.value.reason
    assert str(path) in str(caught.value)


def test_unreadable_and_non_yaml_files_are_profile_errors(tmp_path: Path) -> None:
    with pytest.raises(ProfileError, match="cannot read"):
        load_profile(tmp_path / "missing.yaml")
    broken = tmp_path / "broken.yaml"
    broken.write_text("model: [unclosed")
    with pytest.raises(ProfileError, match="yaml"):
        load_profile(broken)
    listed = tmp_path / "listed.yaml"
    listed.write_text("- a\n- b\n")
    with pytest.raises(ProfileError, match="mapping"):
        load_profile(listed)


def test_model_must_match_file_name(tmp_path: Path) -> None:
    path = tmp_path / "other-name.yaml"
    path.write_text(yaml.safe_dump(_base()))
    with pytest.raises(ProfileError, match="must match the file name"):
        load_profile(path)


def test_registry_names_known_models_for_an_unknown_one(tmp_path: Path) -> None:
    _write(tmp_path, _base())
    registry = ProfileRegistry.load([tmp_path])
    assert "test-case" in registry
    with pytest.raises(KeyError, match="known: .*dixell-xr75cx"):
        registry.get("no-such-model")
