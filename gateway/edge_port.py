"""What the gateway needs from the edge (gateway layer), so the edge can be injected.

`edge.runtime.Edge` satisfies `EdgeRunner`; tests pass a fake that calls the sink. The real
edge is imported only when it is built, so the gateway does not depend on it at import time.
The factory also gets the faults still open in the store database, so the edge resumes them
after a restart (and reports them cleared when they recovered meanwhile), and, when it takes
the keyword ``restored_rule_state``, the rule timers and baselines saved before (``build_edge``).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping, Sequence
from types import TracebackType
from typing import Any, Protocol

from device_profiles import ProfileRegistry
from edge.clock import Clock
from edge.config import EdgeConfig
from edge.model import DeviceSnapshot, EdgeSink, FaultChange


class EdgeRunner(Protocol):
    """An async context manager whose `run()` polls every bus until cancelled."""

    async def __aenter__(self) -> Any: ...

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> Any: ...

    async def run(self) -> None: ...

    def snapshots(self) -> list[DeviceSnapshot]: ...


# (edge config, profiles, sink, clock, restored open faults) -> edge
EdgeFactory = Callable[[EdgeConfig, ProfileRegistry, EdgeSink, Clock, Sequence[FaultChange]], EdgeRunner]


def real_edge(config: EdgeConfig, registry: ProfileRegistry, sink: EdgeSink, clock: Clock,
              restored_faults: Sequence[FaultChange] = (),
              restored_rule_state: Mapping[str, Mapping[str, object]] | None = None) -> EdgeRunner:
    """Build the edge of edge/: Edge(config, registry, sink, clock, restored_faults=...,
    restored_rule_state=...)."""
    from edge.runtime import Edge  # imported here: the edge is optional until a store runs it

    edge: EdgeRunner = Edge(config, registry, sink, clock, restored_faults=restored_faults,
                            restored_rule_state=restored_rule_state)
    return edge


def build_edge(factory: EdgeFactory, config: EdgeConfig, registry: ProfileRegistry, sink: EdgeSink, clock: Clock,
               restored_faults: Sequence[FaultChange],
               restored_rule_state: Mapping[str, Mapping[str, object]]) -> EdgeRunner:
    """Call ``factory``, passing the saved rule state (timers, baselines) as the keyword
    ``restored_rule_state`` only when it takes it: five-argument factories keep working."""
    try:
        parameters = list(inspect.signature(factory).parameters.values())
    except (TypeError, ValueError):
        parameters = []
    if any(p.name == "restored_rule_state" or p.kind is p.VAR_KEYWORD for p in parameters):
        return factory(config, registry, sink, clock, restored_faults,
                       restored_rule_state=restored_rule_state)  # type: ignore[call-arg]
    return factory(config, registry, sink, clock, restored_faults)


def rule_state_of(edge: EdgeRunner) -> Callable[[], Mapping[str, Mapping[str, object]]] | None:
    """The edge's ``rule_state()`` (``edge.runtime.Edge``), or None for an edge without one."""
    source = getattr(edge, "rule_state", None)
    return source if callable(source) else None
