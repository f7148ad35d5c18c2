"""The outbox sender against an in-memory link: window, order, PUBACK deletes, resend after reconnect."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

from edge.clock import FakeClock
from gateway.metrics import GatewayMetrics
from gateway.outbox import Outbox, OutboxKind
from gateway.sender import OutboxSender
from gateway.storage import StoreDatabase
from tests.unit.gateway.fakes import FakePublisher


@pytest.fixture
def outbox(tmp_path: Path) -> Iterator[Outbox]:
    with StoreDatabase.open(tmp_path / "store.db") as db:
        yield Outbox(db, max_bytes=1_000_000, max_age_s=3600, clock=FakeClock())


def fill(outbox: Outbox, kind: OutboxKind, count: int, prefix: str) -> None:
    for i in range(count):
        outbox.put(kind, f"storeguard/v1/store-001/{kind.value}", f"{prefix}{i}".encode())


def test_publishes_in_priority_order_within_the_window(outbox: Outbox) -> None:
    fill(outbox, OutboxKind.TELEMETRY, 3, "t")
    fill(outbox, OutboxKind.FAULT, 3, "f")
    link = FakePublisher()
    sender = OutboxSender(outbox, GatewayMetrics(), window=4)
    assert sender.fill(link) == 4
    assert [p for _, _, p, _, _ in link.sent] == [b"f0", b"f1", b"f2", b"t0"]
    assert sender.fill(link) == 0  # window full until acknowledgements arrive
    assert sender.in_flight == 4


def test_puback_deletes_exactly_its_row_and_frees_the_window(outbox: Outbox) -> None:
    fill(outbox, OutboxKind.FAULT, 3, "f")
    link = FakePublisher()
    metrics = GatewayMetrics()
    sender = OutboxSender(outbox, metrics, window=2)
    sender.fill(link)
    second_mid = link.sent[1][0]
    sender.acked(second_mid)
    assert [r.payload for r in outbox.pending(10)] == [b"f0", b"f2"]
    sender.acked(second_mid)  # a duplicate PUBACK changes nothing
    sender.acked(999)  # nor does one for a message of paho's own
    assert sender.fill(link) == 1
    assert [p for _, _, p, _, _ in link.sent] == [b"f0", b"f1", b"f2"]
    assert metrics.published == {"fault": 3} and metrics.acked == {"fault": 1}


def test_nothing_is_sent_while_disconnected(outbox: Outbox) -> None:
    fill(outbox, OutboxKind.FAULT, 2, "f")
    link = FakePublisher(connected=False)
    assert OutboxSender(outbox, GatewayMetrics()).fill(link) == 0
    assert link.sent == []


def test_after_a_reconnect_everything_unacknowledged_is_sent_again(outbox: Outbox) -> None:
    fill(outbox, OutboxKind.FAULT, 3, "f")
    link = FakePublisher()
    sender = OutboxSender(outbox, GatewayMetrics(), window=10)
    sender.fill(link)
    old_first_mid = link.sent[0][0]
    sender.link_down()
    link.connected = False
    assert sender.in_flight == 0
    sender.acked(old_first_mid)  # the old map is forgotten: a stray PUBACK deletes nothing
    assert outbox.stats().depth == 3
    link.connected = True
    sender.link_up()
    assert sender.fill(link) == 3
    assert [p for _, _, p, _, _ in link.sent[3:]] == [b"f0", b"f1", b"f2"]
    for mid, *_ in link.sent[3:]:
        sender.acked(mid)
    assert outbox.stats().depth == 0


def test_a_full_client_queue_holds_rows_back_and_is_counted(outbox: Outbox) -> None:
    fill(outbox, OutboxKind.FAULT, 5, "f")
    link = FakePublisher(queue_limit=2)
    metrics = GatewayMetrics()
    sender = OutboxSender(outbox, metrics, window=10)
    assert sender.fill(link) == 2
    assert metrics.publish_refused == 1
    assert outbox.stats().depth == 5


async def test_run_wakes_on_new_rows_and_acks(outbox: Outbox) -> None:
    link = FakePublisher()
    sender = OutboxSender(outbox, GatewayMetrics(), window=1)
    task = asyncio.create_task(sender.run(link))
    try:
        fill(outbox, OutboxKind.FAULT, 2, "f")
        sender.wake()
        await asyncio.sleep(0.01)
        assert len(link.sent) == 1
        sender.acked(link.sent[0][0])
        await asyncio.sleep(0.01)
        assert [p for _, _, p, _, _ in link.sent] == [b"f0", b"f1"]
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
