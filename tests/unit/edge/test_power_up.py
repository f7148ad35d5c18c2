"""The device tells its rules when it starts answering: the first good poll, and every return
after an outage (power came back), open the ``after: device_online`` windows."""

from __future__ import annotations

from datetime import timedelta

from device_profiles.schema import DeviceProfile
from edge.config import DeviceConfig
from edge.device import DeviceRuntime
from edge.errors import DeviceTimeout
from edge.model import FaultChange, PointReading
from edge.rules import DeviceRules
from protocols.mqtt.messages import Quality
from tests.unit.edge.fakes import profile
from tests.unit.edge.rule_case import T0


def carel() -> tuple[DeviceRuntime, DeviceProfile]:
    p = profile("carel-ir33-wbref")  # high_temperature: 8 °C, 30 min, device_online window 15 min
    config = DeviceConfig(id="case-1", unit=1, profile=p.model)
    return DeviceRuntime("cases", config, p, DeviceRules(config, p), timeout_s=1), p


def warm(p: DeviceProfile) -> dict[str, PointReading]:
    readings = {pt.name: PointReading(pt.name, False if pt.is_bool else 0.0, Quality.GOOD) for pt in p.points}
    readings["probe1_temp"] = PointReading("probe1_temp", 12.0, Quality.GOOD, "°C")
    return readings


def poll(device: DeviceRuntime, p: DeviceProfile, t: float) -> list[str]:
    changes: list[FaultChange] = device.poll_succeeded(warm(p), t, T0 + timedelta(seconds=t))
    return [f"{c.fault_code}/{c.state.value}" for c in changes]


def test_the_first_good_poll_opens_the_power_up_window() -> None:
    device, p = carel()
    poll(device, p, 0)
    poll(device, p, 899)
    assert device.rules.phases()["high_temperature"] == "normal"
    poll(device, p, 900)
    assert device.rules.phases()["high_temperature"] == "pending"
    assert poll(device, p, 2700) == ["high_temperature/raised"]


def test_coming_back_online_opens_it_again() -> None:
    device, p = carel()
    poll(device, p, 0)
    poll(device, p, 1000)  # pending since 1000
    for t in (1100, 1200, 1300):
        device.poll_failed(DeviceTimeout("no answer"), t, T0 + timedelta(seconds=t), 0)
    assert device.offline
    poll(device, p, 5000)  # success 1 of 2: still offline
    assert poll(device, p, 5005) == ["device_offline/cleared"]
    assert device.rules.phases()["high_temperature"] == "normal"  # held off: power just came back
    poll(device, p, 5905)
    assert device.rules.phases()["high_temperature"] == "pending"
