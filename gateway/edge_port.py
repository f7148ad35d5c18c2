"""What the gateway needs from the edge (gateway layer), so the edge can be injected.

`edge.runtime.Edge` satisfies `EdgeRunner`; tests pass a fake that calls the sink. The real
edge is imported only when it is built, so the gateway does not depend on it at import time.
The factory also gets the faults still open in the store database, so the edge resumes them
after a restart (and reports them cleared when they recovered meanwhile).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
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
              restored_faults: Sequence[FaultChange] = ()) -> EdgeRunner:
    """Build the edge of edge/: Edge(config, registry, sink, clock, restored_faults=...)."""
    from edge.runtime import Edge  # imported here: the edge is optional until a store runs it

    edge: EdgeRunner = Edge(config, registry, sink, clock, restored_faults=restored_faults)
    return edge
