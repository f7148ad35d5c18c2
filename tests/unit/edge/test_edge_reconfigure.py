"""Edge.reconfigure: every device's new rules are built before any is swapped in."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from device_profiles import ProfileRegistry
from edge.clock import FakeClock
from edge.config import EdgeConfig, RuleOverride
from edge.errors import EdgeConfigError
from edge.model import EdgeSink, FaultChange
from edge.runtime import Edge
from protocols.mqtt.messages import FaultClass, FaultState, Severity, TicketClass


class Sink(EdgeSink):
    async def fault_changed(self, change: FaultChange) -> None: ...

    async def device_polled(self, snapshot: object) -> None: ...  # type: ignore[override]


def edge(tmp_path: Path, restored: list[FaultChange] | None = None) -> Edge:
    config = EdgeConfig.model_validate({"buses": [{
        "name": "cases", "transport": "tcp", "host": "127.0.0.1", "tcp_port": 1502,
        "devices": [{"id": "case-01", "unit": 1, "profile": "dixell-xr75cx"},
                    {"id": "case-02", "unit": 2, "profile": "dixell-xr75cx"}]}]})
    return Edge(config, ProfileRegistry.load(), Sink(), FakeClock(), restored_faults=restored or ())


def limit(e: Edge, device_id: str, code: str = "high_temperature") -> float | None:
    [device] = [d for bus in e._buses for d in bus.devices if d.id == device_id]  # noqa: SLF001
    return next((r.limit for r in device.rules.rules if r.code == code), None)


def test_new_overrides_are_swapped_in(tmp_path: Path) -> None:
    e = edge(tmp_path)
    assert e.reconfigure({"case-01": {"high_temperature": RuleOverride(limit=6.0, clear=4.0)}}) == []
    assert (limit(e, "case-01"), limit(e, "case-02")) == (6.0, 8.0)
    assert e.reconfigure({"case-01": {}}) == []  # back to the profile
    assert limit(e, "case-01") == 8.0


@pytest.mark.parametrize("overrides", [
    {"case-01": {"high_temperature": RuleOverride(limit=6.0, clear=4.0)}, "case-09": {}},
    {"case-01": {"high_temperature": RuleOverride(limit=6.0, clear=4.0)},
     "case-02": {"high_temperature": RuleOverride(clear=9.0)}},
    {"case-01": {"high_temperature": RuleOverride(limit=6.0, clear=4.0)}, "case-02": {"nope": RuleOverride()}},
])
def test_one_bad_device_changes_nothing(tmp_path: Path, overrides: dict[str, dict[str, RuleOverride]]) -> None:
    e = edge(tmp_path)
    with pytest.raises(EdgeConfigError):
        e.reconfigure(overrides)
    assert (limit(e, "case-01"), limit(e, "case-02")) == (8.0, 8.0)


def test_an_active_fault_of_a_disabled_rule_is_returned_cleared(tmp_path: Path) -> None:
    raised = FaultChange(device_id="case-01", device_model="dixell-xr75cx", fault_code="high_temperature",
                         state=FaultState.RAISED, severity=Severity.MAJOR, fault_class=FaultClass.FOOD_SAFETY,
                         ticket_class=TicketClass.REPAIR, occurred_at=datetime(2026, 1, 1, tzinfo=UTC),
                         description="warm", location="", evidence={})
    e = edge(tmp_path, [raised])
    [cleared] = e.reconfigure({"case-01": {"high_temperature": RuleOverride(enabled=False)}})
    assert (cleared.device_id, cleared.fault_code, cleared.state) == ("case-01", "high_temperature",
                                                                      FaultState.CLEARED)
    assert e.active_faults() == []
