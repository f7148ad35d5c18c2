"""Simulator config: the documented example loads; every mistake names file, field and reason."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from simulators.config import RtuBusSpec, SimulatorConfig, TcpBusSpec
from simulators.errors import SimulatorConfigError
from simulators.faults import Fault

EXAMPLE = """\
time_scale: 30          # simulated seconds per real second for the thermal model (demo speed)
control: {host: 127.0.0.1, port: 0}   # HTTP control API, 0 = pick a free port
buses:
  - name: rs485-1
    transport: rtu
    link: /tmp/sg-demo/ttyCASES        # symlink created to the pty slave
    baudrate: 9600
    wire_timing: false
    devices:
      - {id: case-01, unit: 1, profile: dixell-xr75cx, setpoint: 3.0}
      - {id: case-02, unit: 2, profile: danfoss-ak-cc55, setpoint: 2.0}
  - name: lanes
    transport: tcp
    host: 127.0.0.1
    port: 5020
    devices:
      - {id: lane-01, unit: 1, profile: storeguard-sco-lane}
scenario:
  - {at_s: 15, device: case-01, fault: door_open, duration_s: 120}
  - {at_s: 40, device: case-02, fault: compressor_dead}
profiles_dirs: []
"""


def write(tmp_path: Path, raw: Any) -> Path:
    path = tmp_path / "sim.yaml"
    path.write_text(raw if isinstance(raw, str) else yaml.safe_dump(raw), encoding="utf-8")
    return path


def example() -> dict[str, Any]:
    return yaml.safe_load(EXAMPLE)  # type: ignore[no-any-return]


def test_the_documented_example_loads(tmp_path: Path) -> None:
    config = SimulatorConfig.load(write(tmp_path, EXAMPLE))
    assert config.time_scale == 30 and config.control.port == 0
    rtu, tcp = config.buses
    assert isinstance(rtu, RtuBusSpec) and rtu.link == Path("/tmp/sg-demo/ttyCASES") and rtu.baudrate == 9600
    assert isinstance(tcp, TcpBusSpec) and tcp.port == 5020
    assert [d.setpoint for d in rtu.devices] == [3.0, 2.0]
    assert config.scenario[0].fault is Fault.DOOR_OPEN and config.scenario[0].duration_s == 120
    assert config.scenario[1].duration_s is None


def test_relative_paths_are_taken_from_the_config_directory(tmp_path: Path) -> None:
    raw = example()
    raw["buses"][0]["link"] = "run/ttyCASES"
    config = SimulatorConfig.load(write(tmp_path, raw))
    assert config.buses[0].link == tmp_path / "run" / "ttyCASES"  # type: ignore[union-attr]


def _break(change: Any) -> dict[str, Any]:
    raw = example()
    change(raw)
    return raw


@pytest.mark.parametrize(
    ("change", "where", "reason"),
    [
        (
            lambda r: r["buses"][0]["devices"][1].update(unit=0),
            "buses[rs485-1]",
            "unit 0 is the RTU broadcast address",
        ),
        (lambda r: r["buses"][0].update(baudrate=9601), "buses[rs485-1].baudrate", "9600"),
        (lambda r: r["buses"][1].update(transport="udp"), "buses[lanes]", "'rtu', 'tcp'"),
        (
            lambda r: r["buses"][1]["devices"][0].update(colour="red"),
            "buses[lanes].devices[lane-01].colour",
            "Extra inputs",
        ),
        (lambda r: r["buses"][0]["devices"][1].update(unit=1), "config", "share a unit id"),
        (lambda r: r["buses"][1]["devices"][0].update(id="case-01"), "config", "device ids must be unique"),
        (lambda r: r["scenario"][0].update(device="case-99"), "config", "unknown device 'case-99'"),
        (lambda r: r["scenario"][0].update(fault="meltdown"), "scenario[0].fault", "door_open"),
        (lambda r: r["scenario"][0].update(code=4), "scenario[0]", "'code' applies to the 'exception' fault only"),
        (
            lambda r: r["scenario"][0].update(fault="paper_end"),
            "scenario[0].fault",
            "does not apply to a refrigeration_controller",
        ),
        (
            lambda r: r["buses"][1]["devices"][0].update(profile="nope"),
            "buses[lanes].devices[lane-01].profile",
            "unknown device profile 'nope'",
        ),
        (
            lambda r: r["buses"][1]["devices"][0].update(setpoint=3.0),
            "buses[lanes].devices[lane-01]",
            "refrigeration controllers only",
        ),
        (
            lambda r: r["buses"][0]["devices"][0].update(initial={"bogus": 1}),
            "buses[rs485-1].devices[case-01].initial.bogus",
            "no such point",
        ),
        (lambda r: r.update(time_scale=0), "time_scale", "greater than 0"),
    ],
)
def test_mistakes_name_file_field_and_reason(tmp_path: Path, change: Any, where: str, reason: str) -> None:
    path = write(tmp_path, _break(change))
    with pytest.raises(SimulatorConfigError) as caught:
        SimulatorConfig.load(path)
    error = caught.value
    assert error.path == str(path)
    assert error.where == where
    assert reason in error.reason
    assert str(error).startswith(f"{path}: {where}: ")


def test_unreadable_and_malformed_files(tmp_path: Path) -> None:
    with pytest.raises(SimulatorConfigError, match="cannot read"):
        SimulatorConfig.load(tmp_path / "missing.yaml")
    with pytest.raises(SimulatorConfigError, match="yaml"):
        SimulatorConfig.load(write(tmp_path, "buses: [unclosed"))
    with pytest.raises(SimulatorConfigError, match="YAML mapping"):
        SimulatorConfig.load(write(tmp_path, "- just a list"))


def test_missing_profiles_dir_is_reported(tmp_path: Path) -> None:
    raw = example()
    raw["profiles_dirs"] = ["no-such-dir"]
    with pytest.raises(SimulatorConfigError, match="profiles_dirs") as caught:
        SimulatorConfig.load(write(tmp_path, raw))
    assert "no-such-dir" in caught.value.reason


def test_unit_zero_is_allowed_on_tcp_only(tmp_path: Path) -> None:
    raw = example()
    raw["buses"][1]["devices"][0]["unit"] = 0  # a plain Modbus TCP device
    assert SimulatorConfig.load(write(tmp_path, raw)).buses[1].devices[0].unit == 0
