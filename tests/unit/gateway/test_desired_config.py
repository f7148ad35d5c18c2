"""Desired config from central at the store: validated, applied atomically, acknowledged, persisted.

A real `edge.runtime.Edge` (never entered: no transports) takes the new rules; the store
database, outbox and sink are the real ones on a temporary file.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from device_profiles.schema import Rule
from edge.clock import FakeClock
from edge.config import RuleOverride
from edge.model import FaultChange
from edge.runtime import Edge
from gateway.config import StoreConfig, load_registry
from gateway.desired_config import DesiredConfigHandler
from gateway.errors import StorageError
from gateway.exposition import _downlink
from gateway.metrics import GatewayMetrics, PromText
from gateway.outbox import Outbox
from gateway.sink import StoreSink
from gateway.storage import StoreDatabase
from protocols.mqtt.messages import (
    ConfigAck,
    ConfigResult,
    DesiredConfig,
    FaultEvent,
    FaultState,
    RuleParameters,
    config_hash,
    parse_message,
)
from protocols.mqtt.topics import TopicKind, topic
from tests.unit.gateway.fakes import fault_change, store_config

STORE = "store-001"
ISSUED = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def desired(version: int, devices: Mapping[str, Mapping[str, dict[str, Any]]]) -> bytes:
    parsed = {d: {code: RuleParameters(**params) for code, params in rules.items()} for d, rules in devices.items()}
    return DesiredConfig(store_id=STORE, version=version, hash=config_hash(parsed), issued_at=ISSUED,
                         issued_by="fran", devices=parsed).to_bytes()


class Recording:
    """The real edge, remembering what it was asked to reconfigure."""

    def __init__(self, edge: Edge) -> None:
        self.edge = edge
        self.calls: list[dict[str, dict[str, RuleOverride]]] = []

    def reconfigure(self, overrides: Mapping[str, Mapping[str, RuleOverride]]) -> list[FaultChange]:
        self.calls.append({d: dict(r) for d, r in overrides.items()})
        return self.edge.reconfigure(overrides)


class Store:
    """One store's gateway parts around a DesiredConfigHandler, as run_store wires them."""

    def __init__(self, config: StoreConfig, restored: list[FaultChange] | None = None) -> None:
        self.config = config
        self.clock = FakeClock()
        self.db = StoreDatabase.open(config.outbox.path)
        self.outbox = Outbox(self.db, max_bytes=1_000_000, max_age_s=3600, clock=self.clock)
        self.metrics = GatewayMetrics()
        self.sink = StoreSink(store_id=STORE, db=self.db, outbox=self.outbox, clock=self.clock, metrics=self.metrics)
        registry = load_registry(config)
        self.handler = DesiredConfigHandler(store_id=STORE, base=config.edge_config, registry=registry, db=self.db,
                                            outbox=self.outbox, sink=self.sink, clock=self.clock,
                                            metrics=self.metrics)
        self.edge_config = self.handler.start()
        self.edge = Recording(Edge(self.edge_config, registry, self.sink, self.clock, restored_faults=restored or ()))
        self.handler.attach(self.edge)

    async def push(self, version: int, devices: Mapping[str, Mapping[str, dict[str, Any]]]) -> ConfigAck:
        assert await self.handler.handle(desired(version, devices)) is True
        return self.acks()[-1]

    def acks(self) -> list[ConfigAck]:
        rows = self.outbox.pending(1000)
        found = [parse_message(r.topic, r.payload) for r in rows if r.topic == topic(STORE, TopicKind.CONFIG_ACK)]
        return [a for a in found if isinstance(a, ConfigAck)]

    def faults(self) -> list[FaultEvent]:
        rows = self.outbox.pending(1000)
        return [m for m in (parse_message(r.topic, r.payload) for r in rows) if isinstance(m, FaultEvent)]

    def rule(self, device_id: str, code: str) -> Rule | None:
        devices = {d.id: d for bus in self.edge.edge._buses for d in bus.devices}  # noqa: SLF001 - white box
        return next((r for r in devices[device_id].rules.rules if r.code == code), None)


@pytest.fixture
def config(tmp_path: Path) -> StoreConfig:
    return store_config(tmp_path)


@pytest.fixture
def store(config: StoreConfig) -> Iterator[Store]:
    opened = Store(config)
    yield opened
    opened.db.close()


HIGH_5 = {"case-01": {"high_temperature": {"limit": 5.0, "clear": 3.0, "delay_s": 600}}}


async def test_a_valid_config_is_applied_to_the_running_edge_and_acknowledged(store: Store) -> None:
    assert store.rule("case-01", "high_temperature").limit == 8.0  # type: ignore[union-attr]
    ack = await store.push(1, HIGH_5)
    assert (ack.result, ack.version, ack.active_version, ack.error) == (ConfigResult.APPLIED, 1, 1, None)
    assert ack.hash == config_hash({"case-01": {"high_temperature": RuleParameters(limit=5, clear=3, delay_s=600)}})
    rule = store.rule("case-01", "high_temperature")
    assert rule is not None and (rule.limit, rule.clear, rule.delay_s) == (5.0, 3.0, 600.0)
    assert store.rule("case-02", "high_temperature").limit == 8.0  # type: ignore[union-attr]
    assert list(store.edge.calls[0]) == ["case-01"]  # only the devices whose overrides change
    status = store.handler.status()
    assert status.active_version == 1 and status.overridden_rules == 1 and status.issued_by == "fran"
    assert status.last_result is ConfigResult.APPLIED


async def test_the_same_version_twice_is_a_no_op(store: Store) -> None:
    first = await store.push(1, HIGH_5)
    assert first.result is ConfigResult.APPLIED
    ack = await store.push(1, HIGH_5)  # e.g. the retained message again after a reconnect
    assert (ack.result, ack.active_version) == (ConfigResult.UNCHANGED, 1)
    assert len(store.edge.calls) == 1
    # the unsent "applied" ack was superseded by the newer answer: central keeps the newest only
    assert [a.result for a in store.acks()] == [ConfigResult.UNCHANGED]


@pytest.mark.parametrize(("devices", "where", "text"), [
    ({"case-09": {"high_temperature": {"limit": 5.0}}}, ("case-09", None, None), "unknown device"),
    ({"case-01": {"warm_cabinet": {"limit": 5.0}}}, ("case-01", "warm_cabinet", None), "no rule"),
    ({"case-01": {"high_temperature": {"clear": 9.0}}}, ("case-01", "high_temperature", "clear"), "above"),
    ({"case-01": {"door_open": {"limit": 1.0}}}, ("case-01", "door_open", "limit"), "takes no"),
])
async def test_an_invalid_config_is_rejected_naming_the_problem_and_the_previous_stays(
    store: Store, devices: dict[str, Any], where: tuple[str | None, ...], text: str
) -> None:
    await store.push(1, HIGH_5)
    # a valid change to case-02 in the same set must not be applied either: all or nothing
    ack = await store.push(2, {**devices, "case-02": {"low_temperature": {"limit": -5.0, "clear": -3.0}}})
    assert ack.result is ConfigResult.REJECTED and ack.version == 2 and ack.active_version == 1
    assert ack.error is not None and (ack.error.device_id, ack.error.rule_code, ack.error.field) == where
    assert text in ack.error.message
    assert store.rule("case-01", "high_temperature").limit == 5.0  # type: ignore[union-attr]
    assert store.rule("case-02", "low_temperature").limit == -2.0  # type: ignore[union-attr]
    assert len(store.edge.calls) == 1
    assert store.handler.status().active_version == 1
    assert store.handler.status().last_error == ack.error


async def test_an_older_version_is_ignored(store: Store) -> None:
    await store.push(2, HIGH_5)
    ack = await store.push(1, {"case-01": {"high_temperature": {"limit": 4.0, "clear": 3.0}}})
    assert (ack.result, ack.version, ack.active_version) == (ConfigResult.UNCHANGED, 1, 2)
    assert store.rule("case-01", "high_temperature").limit == 5.0  # type: ignore[union-attr]


async def test_a_new_version_replaces_the_whole_set(store: Store) -> None:
    await store.push(1, HIGH_5)
    ack = await store.push(2, {"case-02": {"door_open": {"delay_s": 30}}})
    assert ack.result is ConfigResult.APPLIED
    assert store.rule("case-01", "high_temperature").limit == 8.0  # type: ignore[union-attr]  # back to the profile
    assert store.rule("case-02", "door_open").delay_s == 30  # type: ignore[union-attr]


async def test_a_disabled_rule_clears_its_active_fault_through_the_sink(config: StoreConfig) -> None:
    store = Store(config, restored=[fault_change("case-01", "high_temperature")])
    try:
        ack = await store.push(1, {"case-01": {"high_temperature": {"enabled": False}}})
        assert ack.result is ConfigResult.APPLIED
        [cleared] = store.faults()
        assert (cleared.device_id, cleared.fault_code, cleared.state) == ("case-01", "high_temperature",
                                                                          FaultState.CLEARED)
        assert cleared.evidence["reason"] == "rule_disabled"
        assert store.sink.open_faults.list() == []
        assert store.rule("case-01", "high_temperature") is None
    finally:
        store.db.close()


async def test_a_restarted_gateway_applies_the_stored_config_before_its_edge_runs(config: StoreConfig) -> None:
    first = Store(config)
    await first.push(3, HIGH_5)
    first.db.close()
    again = Store(config)
    try:
        assert again.rule("case-01", "high_temperature").limit == 5.0  # type: ignore[union-attr]
        assert again.edge_config.buses[0].devices[0].rules["high_temperature"].limit == 5.0
        assert again.handler.status().active_version == 3
        ack = await again.push(3, HIGH_5)  # the retained message on reconnect
        assert ack.result is ConfigResult.UNCHANGED and again.edge.calls == []
    finally:
        again.db.close()


async def test_yaml_overrides_are_the_base_and_pushed_ones_win_per_rule(tmp_path: Path) -> None:
    devices = [{"id": "case-01", "unit": 1, "profile": "dixell-xr75cx",
                "rules": {"high_temperature": {"limit": 7.0}, "low_temperature": {"delay_s": 60}}}]
    config = store_config(tmp_path, buses=[{"name": "cases", "transport": "tcp", "host": "127.0.0.1",
                                            "tcp_port": 1502, "devices": devices}])
    store = Store(config)
    try:
        assert store.rule("case-01", "high_temperature").limit == 7.0  # type: ignore[union-attr]
        await store.push(1, {"case-01": {"high_temperature": {"delay_s": 120}}})
        high = store.rule("case-01", "high_temperature")
        assert high is not None and (high.limit, high.delay_s) == (8.0, 120.0)  # the whole rule is central's
        assert store.rule("case-01", "low_temperature").delay_s == 60  # type: ignore[union-attr]
    finally:
        store.db.close()


async def test_a_stored_config_that_no_longer_fits_is_dropped_at_start(tmp_path: Path) -> None:
    first = Store(store_config(tmp_path))
    await first.push(1, {"case-02": {"door_open": {"delay_s": 30}}})
    first.db.close()
    one_device = [{"name": "cases", "transport": "tcp", "host": "127.0.0.1", "tcp_port": 1502,
                   "devices": [{"id": "case-01", "unit": 1, "profile": "dixell-xr75cx"}]}]
    again = Store(store_config(tmp_path, buses=one_device))
    try:
        assert again.handler.status().active_version is None
        ack = again.acks()[-1]
        assert ack.result is ConfigResult.REJECTED and ack.active_version is None and ack.version == 1
        assert ack.error is not None and ack.error.device_id == "case-02"
        ack = await again.push(1, {"case-02": {"door_open": {"delay_s": 30}}})  # retained, judged afresh
        assert ack.result is ConfigResult.REJECTED
    finally:
        again.db.close()


async def test_malformed_messages_are_counted_and_dropped(store: Store) -> None:
    assert await store.handler.handle(b"not json") is True
    good = desired(1, HIGH_5)
    assert await store.handler.handle(good.replace(b'"limit":5.0', b'"limit":6.0')) is True  # hash mismatch
    assert await store.handler.handle(good.replace(STORE.encode(), b"store-002")) is True
    assert dict(store.metrics.config_rejected) == {"bad_json": 1, "schema": 1, "store_mismatch": 1}
    text = PromText()
    _downlink(text, store.metrics)  # the store's /metrics section for what central sends down
    assert 'storeguard_gateway_config_rejected_total{reason="bad_json"} 1' in text.render()
    assert store.acks() == [] and store.edge.calls == []


async def test_an_edge_that_cannot_reconfigure_rejects_new_versions(store: Store) -> None:
    store.handler.attach(None)
    ack = await store.push(1, HIGH_5)
    assert ack.result is ConfigResult.REJECTED and ack.error is not None and "reconfigured" in ack.error.message


async def test_a_storage_failure_rolls_the_edge_back_and_leaves_the_message(store: Store,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    await store.push(1, HIGH_5)
    book = store.handler._book  # noqa: SLF001 - inject a disk failure into this one object

    def failing_save(*_args: object) -> None:
        raise StorageError("disk full")

    monkeypatch.setattr(book, "save", failing_save)
    assert await store.handler.handle(desired(2, {"case-01": {"high_temperature": {"limit": 4.0, "clear": 3.0}}})) is False
    assert store.rule("case-01", "high_temperature").limit == 5.0  # type: ignore[union-attr]
    assert store.handler.status().active_version == 1
    assert [a.result for a in store.acks()] == [ConfigResult.APPLIED]


async def test_a_damaged_stored_config_is_not_applied(config: StoreConfig) -> None:
    first = Store(config)
    await first.push(1, HIGH_5)
    first.db.execute("UPDATE config_applied SET devices = replace(devices, '5.0', '4.0')")
    first.db.close()
    again = Store(config)
    try:
        assert again.rule("case-01", "high_temperature").limit == 8.0  # type: ignore[union-attr]
        assert again.handler.status().active_version is None
        ack = await again.push(1, HIGH_5)  # the retained message applies it again
        assert ack.result is ConfigResult.APPLIED
    finally:
        again.db.close()
