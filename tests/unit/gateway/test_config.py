"""StoreConfig from YAML: defaults, relative paths, and errors that name file, field and reason."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from gateway.config import ConfigError, StoreConfig

GOOD = {
    "store_id": "store-001",
    "name": "Harbour Road",
    "mqtt": {"url": "mqtt://broker.local:1884", "username": "store-001", "password": "s3cret"},
    "outbox": {"path": "data/store.db", "max_bytes": 1_000_000, "max_age_s": 3600},
    "http": {"host": "0.0.0.0", "port": 0},
    "telemetry_interval_s": 10,
    "health_interval_s": 30,
    "buses": [{
        "name": "cases", "transport": "rtu", "port": "/dev/ttyUSB0",
        "devices": [{"id": "case-01", "unit": 1, "profile": "dixell-xr75cx"}],
    }],
}


def write(tmp_path: Path, raw: object) -> Path:
    path = tmp_path / "store.yaml"
    path.write_text(yaml.safe_dump(raw) if not isinstance(raw, str) else raw)
    return path


def changed(**changes: object) -> dict[str, object]:
    return {**GOOD, **changes}


def test_loads_with_defaults_and_paths_relative_to_the_file(tmp_path: Path) -> None:
    config = StoreConfig.load(write(tmp_path, GOOD))
    assert config.mqtt.client_id == "sg-gw-store-001"
    assert (config.mqtt.host, config.mqtt.port) == ("broker.local", 1884)
    assert config.mqtt.password is not None and config.mqtt.password.get_secret_value() == "s3cret"
    assert "s3cret" not in repr(config)
    assert config.outbox.path == tmp_path / "data" / "store.db"
    assert config.mqtt.keepalive_s == 30 and config.mqtt.inflight_window == 20
    assert [d.id for b in config.edge_config.buses for d in b.devices] == ["case-01"]


def test_explicit_client_id_is_kept(tmp_path: Path) -> None:
    config = StoreConfig.load(write(tmp_path, changed(mqtt={"url": "mqtt://h:1883", "client_id": "gw-a"})))
    assert config.mqtt.client_id == "gw-a"


@pytest.mark.parametrize(
    ("raw", "field", "reason"),
    [
        (changed(store_id="Store 1"), "store_id", "should match pattern"),
        (changed(mqtt={"url": "http://broker:1883"}), "mqtt.url", "mqtt://host:port"),
        (changed(mqtt={"url": "mqtt://broker:99999"}), "mqtt.url", "invalid port"),
        (changed(mqtt={"url": "mqtt://h:1", "reconnect_min_s": 5, "reconnect_max_s": 1}), "mqtt", "reconnect_max_s"),
        (changed(outbox={"path": "x.db", "max_bytes": 10}), "outbox.max_bytes", "greater than or equal"),
        (changed(http={"port": 70000}), "http.port", "less than or equal"),
        (changed(telemetry_interval_s=0), "telemetry_interval_s", "greater than 0"),
        (changed(colour="blue"), "colour", "Extra inputs are not permitted"),
        ({k: v for k, v in GOOD.items() if k != "name"}, "name", "Field required"),
        (changed(buses=[]), "buses", "at least 1 item"),
        (changed(buses=[{"name": "cases", "transport": "tcp", "devices": [{"id": "a", "unit": 1, "profile": "p"}]}]),
         "buses.0", "needs 'host' and 'tcp_port'"),
        (changed(buses=[
            {"name": "a", "transport": "rtu", "port": "/dev/ttyUSB0",
             "devices": [{"id": "case-01", "unit": 1, "profile": "dixell-xr75cx"}]},
            {"name": "b", "transport": "rtu", "port": "/dev/ttyUSB1",
             "devices": [{"id": "case-01", "unit": 1, "profile": "dixell-xr75cx"}]},
        ]), "buses", "device ids must be unique"),
        (changed(buses=[
            {"name": "case-01", "transport": "rtu", "port": "/dev/ttyUSB0",
             "devices": [{"id": "case-01", "unit": 1, "profile": "dixell-xr75cx"}]},
        ]), "buses", "is a device id and a bus name"),
        (changed(buses=[
            {"name": "a", "transport": "rtu", "port": "/dev/ttyUSB0",
             "devices": [{"id": "store-power", "unit": 1, "profile": "dixell-xr75cx"}]},
        ]), "buses", "reserved 'store-power'"),
        (changed(buses=[{"name": "cases", "transport": "rtu", "port": "/dev/ttyUSB0", "devices": [
            {"id": "case-01", "unit": 1, "profile": "dixell-xr75cx"},
            {"id": "case-02", "unit": 2, "profile": "carel-ir33"}]}]),
         "buses.0.devices.1.profile", "unknown device profile 'carel-ir33'"),
    ],
)
def test_errors_name_file_field_and_reason(tmp_path: Path, raw: object, field: str, reason: str) -> None:
    path = write(tmp_path, raw)
    with pytest.raises(ConfigError) as caught:
        StoreConfig.load(path)
    assert caught.value.field == field
    assert reason in caught.value.reason
    assert str(path) in str(caught.value) and field in str(caught.value)


def test_unreadable_and_malformed_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as missing:
        StoreConfig.load(tmp_path / "nope.yaml")
    assert missing.value.field == "file"
    with pytest.raises(ConfigError) as bad_yaml:
        StoreConfig.load(write(tmp_path, "store_id: [unclosed"))
    assert bad_yaml.value.field == "yaml"
    with pytest.raises(ConfigError) as not_a_mapping:
        StoreConfig.load(write(tmp_path, "- just\n- a list\n"))
    assert not_a_mapping.value.field == "config"


def test_missing_profiles_dir_is_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        StoreConfig.load(write(tmp_path, changed(profiles_dirs=["extra-profiles"])))
    assert caught.value.field == "profiles_dirs"
    assert "extra-profiles" in caught.value.reason


def test_extra_profiles_dir_makes_a_profile_known(tmp_path: Path) -> None:
    extra = tmp_path / "profiles"
    extra.mkdir()
    builtin = Path(__file__).parents[3] / "device_profiles" / "profiles" / "dixell-xr75cx.yaml"
    text = builtin.read_text().replace("model: dixell-xr75cx", "model: dixell-xr75cx-b")
    (extra / "dixell-xr75cx-b.yaml").write_text(text)
    buses = [{"name": "cases", "transport": "rtu", "port": "/dev/ttyUSB0",
              "devices": [{"id": "case-01", "unit": 1, "profile": "dixell-xr75cx-b"}]}]
    config = StoreConfig.load(write(tmp_path, changed(profiles_dirs=["profiles"], buses=buses)))
    assert config.profiles_dirs == [extra]
