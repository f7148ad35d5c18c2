"""The store process (gateway layer): wires edge, outbox, MQTT session, timers and store page.

`run_store` owns one TaskGroup: the edge's `run()`, the outbox sender, the downlink
consumer, the telemetry timers (one per bus) and the health timer; the store database, the
MQTT session, the edge and the web server are context managers around it. Cancelling it
shuts everything down in reverse order, publishing a final retained StoreHealth(online=false)
when the link is up (the broker's last will covers crashes).
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Callable, Mapping
from contextlib import AsyncExitStack

from pydantic import ValidationError

from device_profiles import ProfileRegistry
from edge.clock import Clock, SystemClock
from edge.config import EdgeConfig
from edge.metrics import EdgeMetrics
from edge.model import FaultChange
from gateway.config import StoreConfig, load_registry
from gateway.desired_config import DesiredConfigHandler, Reconfigurable
from gateway.downlink import DownlinkHandler
from gateway.edge_port import EdgeFactory, EdgeRunner, build_edge, real_edge, rule_state_of
from gateway.errors import GatewayError
from gateway.metrics import GatewayMetrics
from gateway.mqtt import MqttSession
from gateway.outbox import Outbox
from gateway.rule_state import SAVE_INTERVAL_S, RuleStateStore
from gateway.sender import OutboxSender
from gateway.sink import UNASSIGNED, StoreSink
from gateway.storage import StoreDatabase
from gateway.tickets import TicketBook
from gateway.view import StoreView
from gateway.web import StorePage, create_app
from protocols.mqtt.topics import TopicKind, topic

log = logging.getLogger(__name__)


class StoreReady(asyncio.Event):
    """A ready event that also tells where the store page listens (set once it does)."""

    def __init__(self) -> None:
        super().__init__()
        self.http_port = 0
        self.url = ""


async def run_store(config: StoreConfig, *, ready: asyncio.Event | None = None,
                    edge_factory: EdgeFactory | None = None, clock: Clock | None = None) -> None:
    """Run one store until cancelled. `ready` is set once the store page listens; pass a
    `StoreReady` to learn its URL. `edge_factory(edge_config, registry, sink, clock,
    restored_faults)` defaults to `edge.runtime.Edge`; `restored_faults` are the faults still
    open in the store database, which the edge resumes (or clears) after a restart. A factory that
    takes the keyword `restored_rule_state` also gets the rule timers and baselines saved (every
    minute and at shutdown) by the previous run."""
    await StoreGateway(config, edge_factory=edge_factory, clock=clock).run(ready=ready)


class _LinkEvents:
    """What happens on the loop when the MQTT link changes."""

    def __init__(self, sender: OutboxSender, sink: StoreSink) -> None:
        self._sender = sender
        self._sink = sink

    def link_up(self) -> None:
        self._sender.link_up()
        _guarded(self._sink.emit_health, "health on connect")  # retained online=true, after any fault backlog

    def link_down(self) -> None:
        self._sender.link_down()

    def acked(self, mid: int) -> None:
        self._sender.acked(mid)


class StoreGateway:
    def __init__(self, config: StoreConfig, *, edge_factory: EdgeFactory | None = None,
                 clock: Clock | None = None) -> None:
        self.config = config
        self._edge_factory = edge_factory or real_edge
        self._clock: Clock = clock or SystemClock()
        self.metrics = GatewayMetrics()
        self.url = ""

    async def run(self, *, ready: asyncio.Event | None = None) -> None:
        config, clock = self.config, self._clock
        registry = load_registry(config)
        with StoreDatabase.open(config.outbox.path) as db:
            outbox = Outbox(db, max_bytes=config.outbox.max_bytes, max_age_s=config.outbox.max_age_s, clock=clock)
            tickets = TicketBook(db, clock)
            sender = OutboxSender(outbox, self.metrics, window=config.mqtt.inflight_window)
            sink = StoreSink(store_id=config.store_id, store_name=config.name, db=db, outbox=outbox, clock=clock,
                             metrics=self.metrics, on_enqueued=sender.wake,
                             buses={bus.name: [d.id for d in bus.devices] for bus in config.edge_config.buses})
            session = MqttSession(config.mqtt, store_id=config.store_id, listener=_LinkEvents(sender, sink),
                                  will=lambda: sink.health(online=False).to_bytes(), clock=clock,
                                  metrics=self.metrics)
            downlink = DownlinkHandler(store_id=config.store_id, tickets=tickets, metrics=self.metrics)
            desired = DesiredConfigHandler(store_id=config.store_id, base=config.edge_config, registry=registry,
                                           db=db, outbox=outbox, sink=sink, clock=clock, metrics=self.metrics,
                                           on_enqueued=sender.wake)
            edge_config = desired.start()  # the desired config stored from central applies before the edge runs
            async with AsyncExitStack() as stack:
                await stack.enter_async_context(session)
                stack.push_async_callback(self._say_goodbye, session, sink)
                rule_states = RuleStateStore(db, clock)
                edge = self._build_edge(edge_config, registry, sink, sink.open_faults.restore(), rule_states.load())
                save_rule_state = _rule_state_saver(edge, rule_states)
                if save_rule_state is not None:  # at shutdown, after the edge has stopped
                    stack.callback(_guarded, save_rule_state, "rule state at shutdown")
                desired.attach(_reconfigurable(edge))
                await stack.enter_async_context(edge)
                sink.seed(edge.snapshots())
                _guarded(sink.emit_health, "health at start")  # the one sent on connect knew no devices yet
                view = StoreView(config=config, sink=sink, outbox=outbox, sender=sender, tickets=tickets,
                                 metrics=self.metrics, link=session.status, edge_metrics=_edge_metrics(edge),
                                 clock=clock, config_status=desired.status)
                app = create_app(view, store_id=config.store_id, store_name=config.name)
                page = await stack.enter_async_context(StorePage(app, host=config.http.host, port=config.http.port))
                self.url = page.url
                log.info("store %s: store page at %s", config.store_id, page.url)
                if isinstance(ready, StoreReady):
                    ready.http_port, ready.url = page.port, page.url
                if ready is not None:
                    ready.set()
                async with asyncio.TaskGroup() as tasks:
                    tasks.create_task(edge.run(), name="edge")
                    tasks.create_task(sender.run(session), name="outbox-sender")
                    tasks.create_task(_consume_downlink(session, downlink, desired), name="downlink")
                    for group, cycle_s in _telemetry_groups(config):
                        tasks.create_task(_telemetry(clock, sink, config.telemetry_interval_s, cycle_s, group),
                                          name=f"telemetry-timer-{group or 'unassigned'}")
                    tasks.create_task(_every(clock, config.health_interval_s, sink.emit_health, "health"),
                                      name="health-timer")
                    if save_rule_state is not None:
                        tasks.create_task(_every(clock, SAVE_INTERVAL_S, save_rule_state, "rule state"),
                                          name="rule-state-timer")

    def _build_edge(self, edge_config: EdgeConfig, registry: ProfileRegistry, sink: StoreSink,
                    restored: list[FaultChange], rule_state: Mapping[str, Mapping[str, object]]) -> EdgeRunner:
        return build_edge(self._edge_factory, edge_config, registry, sink, self._clock, restored, rule_state)

    async def _say_goodbye(self, session: MqttSession, sink: StoreSink) -> None:
        """A graceful disconnect suppresses the will, so say offline ourselves (best effort)."""
        try:
            await session.publish_final(topic(self.config.store_id, TopicKind.HEALTH),
                                        sink.health(online=False).to_bytes())
        except Exception:
            log.debug("final offline health not sent", exc_info=True)


def _edge_metrics(edge: EdgeRunner) -> Callable[[], EdgeMetrics | None]:
    """The edge's counters when it has any (`edge.runtime.Edge.metrics()`); fakes may not."""
    source = getattr(edge, "metrics", None)
    if not callable(source):
        return lambda: None

    def read() -> EdgeMetrics | None:
        found = source()
        return found if isinstance(found, EdgeMetrics) else None

    return read


def _rule_state_saver(edge: EdgeRunner, store: RuleStateStore) -> Callable[[], None] | None:
    """Saves the edge's rule timers and baselines (`edge.runtime.Edge.rule_state()`); fakes may not have them."""
    source = rule_state_of(edge)
    return None if source is None else store.saver(source)


def _reconfigurable(edge: EdgeRunner) -> Reconfigurable | None:
    """The edge when it can take a new config while running (`edge.runtime.Edge`); fakes may not."""
    return edge if callable(getattr(edge, "reconfigure", None)) else None  # type: ignore[return-value]


async def _consume_downlink(session: MqttSession, handler: DownlinkHandler, desired: DesiredConfigHandler) -> None:
    while True:
        message = await session.downlink.get()
        if message.topic == desired.topic:
            ack = await desired.handle(message.payload)
        else:
            ack = handler.handle(message.topic, message.payload).ack
        if ack:
            session.ack(message)


async def _every(clock: Clock, interval_s: float, action: Callable[[], object], name: str) -> None:
    """Run `action` every interval; a failing tick is logged once, then at debug until it recovers."""
    failing = False
    while True:
        await clock.sleep(interval_s)
        ok = _guarded(action, f"{name} timer", quiet=failing)
        if ok and failing:
            log.info("%s timer recovered", name)
        failing = not ok


def _telemetry_groups(config: StoreConfig) -> list[tuple[str, float]]:
    """(telemetry group, its poll cycle): every bus, and the devices on no configured bus (none
    in a real store) timed by the slowest bus."""
    buses = config.edge_config.buses
    slowest = max((bus.poll_interval_s for bus in buses), default=config.telemetry_interval_s)
    return [(bus.name, bus.poll_interval_s) for bus in buses] + [(UNASSIGNED, slowest)]


async def _telemetry(clock: Clock, sink: StoreSink, interval_s: float, cycle_s: float, group: str) -> None:
    """One telemetry batch of one bus (``group``) per interval, timed to follow a complete poll
    cycle of that bus.

    The window for fresh readings opens one poll cycle before the batch is due; the batch goes
    out as soon as every online device of the bus has been polled in it, or half a cycle after
    it was due at the latest (a stalled bus, a device in backoff). Scheduled from the previous
    batch, so the period does not drift by the time the work takes. Each bus has its own timer:
    with the buses' cycles staggered (``edge.runtime``), each batch follows its own bus's cycle
    instead of every value waiting for the last bus of the store.
    """
    cycle_s = min(cycle_s, interval_s)
    failing = False
    last = clock.monotonic()
    while True:
        await clock.sleep(max(0.0, last + interval_s - cycle_s - clock.monotonic()))
        if not sink.has_snapshots(group):  # nothing polled yet (or no device in the group: UNASSIGNED)
            await clock.sleep(cycle_s)
            last = clock.monotonic()
            continue
        sink.open_cycle_window(group)
        deadline = last + interval_s + cycle_s / 2
        fresh = asyncio.ensure_future(sink.wait_for_fresh_cycle(group))
        timer = asyncio.ensure_future(clock.sleep(max(0.0, deadline - clock.monotonic())))
        try:
            await asyncio.wait({fresh, timer}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in (fresh, timer):
                waiter.cancel()
        ok = _guarded(functools.partial(sink.emit_telemetry, group), "telemetry timer", quiet=failing)
        if ok and failing:
            log.info("telemetry timer recovered")
        failing = not ok
        last = clock.monotonic()


def _guarded(action: Callable[[], object], what: str, *, quiet: bool = False) -> bool:
    """Run a periodic job; its failure (disk full, a refused message) must not stop the store."""
    try:
        action()
    except (GatewayError, ValidationError) as exc:
        log.log(logging.DEBUG if quiet else logging.ERROR, "%s failed: %s", what, exc)
        return False
    return True
