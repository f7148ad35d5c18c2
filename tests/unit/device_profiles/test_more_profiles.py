"""The Eliwell, Carel (WB-REF-U), Danfoss EKC 202 and APC NMC2 profiles: golden register maps.

Every address, scale and bit below is checked against shared/domain/DEVICES.md (§1.2-§1.4,
§3 UPS, §4 rules), so an edit that moves a register has to move the test too.
"""

from __future__ import annotations

import re

import pytest

from device_profiles import DeviceProfile, ProfileRegistry, RuleType
from device_profiles.schema import Access
from protocols.modbus import RawType, Table
from protocols.mqtt.messages import FaultClass, Severity, TicketClass

NEW_MODELS = ("eliwell-idplus-902", "carel-ir33-wbref", "danfoss-ekc-202", "apc-smart-ups-nmc2")
REFRIGERATION = ("eliwell-idplus-902", "carel-ir33-wbref", "danfoss-ekc-202")
SOURCE_KEY = re.compile(r"\[[A-Z0-9]+\]")  # [WB], [AKCC55], [HANUT] ...


@pytest.fixture(scope="module")
def registry() -> ProfileRegistry:
    return ProfileRegistry.load()


def where(profile: DeviceProfile, name: str) -> tuple[Table, int, int | None]:
    point = profile.point(name)
    return point.table, point.address, point.bit


def test_the_new_profiles_load_next_to_the_old_ones(registry: ProfileRegistry) -> None:
    assert set(NEW_MODELS) | {"dixell-xr75cx", "danfoss-ak-cc55", "storeguard-sco-lane"} <= set(registry.models())
    for model in REFRIGERATION:
        assert registry.get(model).kind == "refrigeration_controller"
    assert registry.get("apc-smart-ups-nmc2").kind == "ups"


@pytest.mark.parametrize("model", NEW_MODELS)
def test_every_new_point_cites_a_devices_md_source(registry: ProfileRegistry, model: str) -> None:
    profile = registry.get(model)
    assert SOURCE_KEY.search(profile.provenance), model
    for point in profile.points:
        assert SOURCE_KEY.search(point.provenance), f"{model}.{point.name}: {point.provenance!r}"


@pytest.mark.parametrize("model", REFRIGERATION)
def test_refrigeration_profiles_carry_the_roles_the_thermal_model_writes(registry: ProfileRegistry, model: str) -> None:
    profile = registry.get(model)
    for role in (
        "air_temperature",
        "evaporator_temperature",
        "setpoint",
        "compressor_on",
        "defrost_active",
        "high_temp_alarm",
        "door_alarm",
        "probe_alarm",
        "defrost_timeout_alarm",
    ):
        assert profile.point_with_role(role) is not None, f"{model} lacks role {role}"
    setpoint = profile.point_with_role("setpoint")
    assert setpoint is not None and setpoint.access is Access.READ_WRITE
    codes = {r.code for r in profile.rules}
    assert {"high_temperature", "probe_fault", "door_open", "defrost_timeout"} <= codes


# --- Eliwell IDPlus 902, native map (DEVICES.md §1.3) ------------------------------------


def test_eliwell_analogue_inputs_setpoint_and_read_limit(registry: ProfileRegistry) -> None:
    eliwell = registry.get("eliwell-idplus-902")
    for name, address in (("ai1_temp", 295), ("ai2_temp", 297), ("ai3_temp", 299)):
        point = eliwell.point(name)
        assert (point.table, point.address, point.type, point.scale) == (Table.HOLDING, address, RawType.INT16, 0.1)
        assert point.sentinels[0x8000] == "probe_fault"
    assert eliwell.point("ai1_temp").role == "air_temperature"
    assert eliwell.point("ai2_temp").role == "evaporator_temperature"
    setpoint = eliwell.point("setpoint")
    assert (setpoint.address, setpoint.scale, setpoint.access) == (16416, 0.1, Access.READ_WRITE)
    assert (eliwell.point("hal_limit").address, eliwell.point("lal_limit").address) == (16422, 16424)
    assert eliwell.modbus.max_registers_per_read == 15


@pytest.mark.parametrize(
    ("name", "address", "bit"),
    [
        ("overtemp_alarm", 32876, 0),
        ("ai1_fault", 32876, 1),
        ("ai2_fault", 32876, 2),
        ("ai1_high_alarm", 32876, 5),
        ("ai1_low_alarm", 32876, 6),
        ("door_alarm", 32876, 7),
        ("ai3_fault", 32877, 0),
        ("haccp_alarm", 32877, 1),
        ("defrost_timeout", 32878, 0),
        ("pressure_switch_alarm", 32878, 5),
        ("summary_alarm", 32891, 5),
        ("compressor_on", 32886, 3),
        ("defrost_active", 32886, 5),
        ("fans_on", 32888, 7),
        ("door_open", 32896, 3),
    ],
)
def test_eliwell_bits_packed_in_holding_registers(
    registry: ProfileRegistry, name: str, address: int, bit: int
) -> None:
    eliwell = registry.get("eliwell-idplus-902")
    assert where(eliwell, name) == (Table.HOLDING, address, bit)
    assert eliwell.point(name).is_bool


def test_eliwell_rules(registry: ProfileRegistry) -> None:
    rules = {r.code: r for r in registry.get("eliwell-idplus-902").rules}
    assert rules["high_temperature"].type is RuleType.HIGH_LIMIT and rules["high_temperature"].point == "ai1_temp"
    assert rules["low_temperature"].type is RuleType.LOW_LIMIT
    assert rules["probe_fault"].type is RuleType.PROBE_FAULT and rules["probe_fault"].point == "ai1_temp"
    assert rules["door_open"].ticket_class is TicketClass.STORE_TASK
    assert rules["defrost_timeout"].point == "defrost_timeout"
    pressure = rules["pressure_switch"]
    assert (pressure.type, pressure.point, pressure.severity) == (
        RuleType.FLAG,
        "pressure_switch_alarm",
        Severity.CRITICAL,
    )
    suppressors = {s.point or s.after for s in rules["high_temperature"].suppress}
    assert suppressors == {"defrost_active", "door_open", "device_online"}


# --- Carel ir33 via WB-REF-U (DEVICES.md §1.2) -------------------------------------------


@pytest.mark.parametrize(
    ("name", "table", "address"),
    [
        ("probe1_temp", Table.INPUT, 403),
        ("probe2_temp", Table.INPUT, 412),
        ("virtual_probe_temp", Table.INPUT, 406),
        ("setpoint", Table.HOLDING, 404),
        ("ah_limit", Table.HOLDING, 416),
        ("al_limit", Table.HOLDING, 429),
        ("a0_differential", Table.HOLDING, 427),
        ("ad_delay", Table.HOLDING, 495),
        ("high_temp_alarm", Table.COIL, 5),
        ("low_temp_alarm", Table.COIL, 2),
        ("condenser_high_temp_alarm", Table.COIL, 25),
        ("probe1_fault", Table.DISCRETE, 3),
        ("probe2_fault", Table.DISCRETE, 6),
        ("defrost_timeout_alarm", Table.DISCRETE, 29),
        ("door_timeout_alarm", Table.DISCRETE, 28),
        ("compressor_relay", Table.DISCRETE, 7),
        ("fan_relay", Table.DISCRETE, 13),
        ("defrost_relay", Table.DISCRETE, 0),
        ("defrost_active", Table.DISCRETE, 18),
    ],
)
def test_carel_wbref_addresses(registry: ProfileRegistry, name: str, table: Table, address: int) -> None:
    assert where(registry.get("carel-ir33-wbref"), name) == (table, address, None)


def test_carel_is_marked_as_an_unverified_adapter_map(registry: ProfileRegistry) -> None:
    carel = registry.get("carel-ir33-wbref")
    assert "ADAPTER MAP" in carel.description and "[unverified]" in carel.description
    assert "WB-REF-U" in carel.provenance
    assert all("[unverified" in p.provenance for p in carel.points), "every adapter address is unverified"
    for name in ("probe1_temp", "probe2_temp", "setpoint"):
        assert carel.point(name).scale == 0.1 and carel.point(name).type is RawType.INT16
    # the controller's flags carry the alarms; a high limit on probe 1 backs them up
    rules = {r.code: r for r in carel.rules}
    assert rules["high_temperature"].type is RuleType.HIGH_LIMIT and rules["high_temperature"].point == "probe1_temp"
    flags = {r.point for r in carel.rules if r.type is RuleType.FLAG}
    assert {
        "high_temp_alarm",
        "low_temp_alarm",
        "probe1_fault",
        "probe2_fault",
        "defrost_timeout_alarm",
        "door_timeout_alarm",
        "condenser_high_temp_alarm",
    } <= flags


# --- Danfoss EKC 202 via EKA 178A (DEVICES.md §1.4) --------------------------------------

EKC_ALARM_ORDER = [
    "alarm_controller",
    "alarm_clock",
    "alarm_s3_error",
    "alarm_s4_error",
    "alarm_s5_error",
    "alarm_high_temp",
    "alarm_low_temp",
    "alarm_door",
    "alarm_di1",
    "alarm_di2",
    "alarm_max_defrost_time",
    "alarm_max_hold_time",
]


def test_ekc_registers_are_pnu_minus_one(registry: ProfileRegistry) -> None:
    ekc = registry.get("danfoss-ekc-202")
    assert (ekc.modbus.serial.parity, ekc.modbus.serial.bytesize, ekc.modbus.serial.stopbits) == ("E", 8, 1)
    assert "[unverified]" in ekc.provenance or any("[unverified]" in p.provenance for p in ekc.points)
    for name, address, role in (
        ("air_on_temp", 2529, "air_on_temperature"),
        ("air_off_temp", 2530, "air_temperature"),
        ("evaporator_temp", 1010, "evaporator_temperature"),
        ("setpoint", 99, "setpoint"),
    ):
        point = ekc.point(name)
        assert (point.table, point.address, point.scale, point.role) == (Table.HOLDING, address, 0.1, role)
    for name, address in (
        ("cooling_relay", 2509),
        ("fan_relay", 2510),
        ("defrost_relay", 2511),
        ("alarm_relay", 2582),
        ("defrost_start", 1012),
        ("defrost_active", 1035),
    ):
        assert where(ekc, name) == (Table.HOLDING, address, 0)
    assert ekc.point("defrost_start").access is Access.READ_WRITE


def test_ekc_alarm_flags_in_the_listed_order(registry: ProfileRegistry) -> None:
    ekc = registry.get("danfoss-ekc-202")
    assert [where(ekc, name) for name in EKC_ALARM_ORDER] == [
        (Table.HOLDING, 19999 + i, 0) for i in range(len(EKC_ALARM_ORDER))
    ]
    assert ekc.point("alarm_max_defrost_time").address == 20009  # DEVICES.md §4: "EKC 20009"


def test_ekc_alarm_parameters_are_writable(registry: ProfileRegistry) -> None:
    ekc = registry.get("danfoss-ekc-202")
    expected = {
        "a03_alarm_delay": (10001, 1.0, "min"),
        "a04_door_delay": (10002, 1.0, "min"),
        "a13_high_limit": (10018, 0.1, "°C"),
        "a14_low_limit": (10019, 0.1, "°C"),
    }
    for name, (address, scale, unit) in expected.items():
        point = ekc.point(name)
        assert (point.address, point.scale, point.unit, point.access) == (address, scale, unit, Access.READ_WRITE)
    rules = {r.code: r for r in ekc.rules}
    assert (rules["high_temperature"].limit, rules["high_temperature"].delay_s) == (8.0, 1800)  # A13, A03
    assert rules["low_temperature"].limit == -30.0  # A14


# --- APC UPS through an NMC2 (DEVICES.md §3, §4) -----------------------------------------


def test_ups_registers_and_status_bits(registry: ProfileRegistry) -> None:
    ups = registry.get("apc-smart-ups-nmc2")
    for name, address, unit in (("battery_charge", 5, "%"), ("runtime_left", 6, "min"), ("load", 12, "%")):
        point = ups.point(name)
        assert (point.table, point.address, point.type, point.scale, point.unit) == (
            Table.HOLDING,
            address,
            RawType.UINT16,
            1.0,
            unit,
        )
    bits = {"mains_power": 3, "on_battery": 4, "overload": 5, "low_battery": 6, "replace_battery": 7}
    for name, bit in bits.items():
        assert where(ups, name) == (Table.HOLDING, 3, bit)
    assert "[unverified]" in ups.point("mains_power").provenance  # its meaning/polarity is not confirmed
    assert all(p.access is Access.READ for p in ups.points)


def test_ups_rules_on_battery_is_info_the_rest_are_tickets(registry: ProfileRegistry) -> None:
    rules = {r.code: r for r in registry.get("apc-smart-ups-nmc2").rules}
    on_battery = rules["on_battery"]
    assert (on_battery.type, on_battery.severity, on_battery.ticket_class) == (
        RuleType.FLAG,
        Severity.INFO,
        TicketClass.STORE_TASK,
    )
    for code in ("low_battery", "overload", "replace_battery", "battery_charge_low"):
        assert rules[code].ticket_class is TicketClass.REPAIR, code
        assert rules[code].severity is not Severity.INFO, code
    charge = rules["battery_charge_low"]
    assert (charge.type, charge.point, charge.limit) == (RuleType.LOW_LIMIT, "battery_charge", 10.0)
    assert {r.fault_class for r in rules.values()} == {FaultClass.EQUIPMENT}
