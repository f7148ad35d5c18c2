"""What the gateway needs from the edge (gateway layer), so the edge can be injected.

`edge.runtime.Edge` satisfies `EdgeRunner`; tests pass a fake that calls the sink. The real
edge is imported only when it is built, so the gateway does not depend on it at import time.
"""

from __future__ import annotations

from collections.abc import Callable
from types import TracebackType
from typing import Any, Protocol

from device_profiles import ProfileRegistry
from edge.clock import Clock
from edge.config import EdgeConfig
from edge.model import DeviceSnapshot, EdgeSink


class EdgeRunner(Protocol):
    """An async context manager whose `run()` polls every bus until cancelled."""

    async def __aenter__(self) -> Any: ...

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> Any: ...

    async def run(self) -> None: ...

    def snapshots(self) -> list[DeviceSnapshot]: ...


EdgeFactory = Callable[[EdgeConfig, ProfileRegistry, EdgeSink, Clock], EdgeRunner]


def real_edge(config: EdgeConfig, registry: ProfileRegistry, sink: EdgeSink, clock: Clock) -> EdgeRunner:
    """Build the edge of edge/ (planned API: Edge(config, registry, sink, clock))."""
    from edge.runtime import Edge  # imported here: the edge is optional until a store runs it

    edge: EdgeRunner = Edge(config, registry, sink, clock)
    return edge
