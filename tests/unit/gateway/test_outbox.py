"""The durable outbox: send order, persistence, the eviction policy, drop counts and the sequence."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from edge.clock import FakeClock
from gateway.outbox import DropReason, Outbox, OutboxKind
from gateway.storage import StoreDatabase

FAULT, HEALTH, TELEMETRY = OutboxKind.FAULT, OutboxKind.HEALTH, OutboxKind.TELEMETRY


def opened(path: Path, clock: FakeClock, max_bytes: int = 1_000_000, max_age_s: float = 3600) -> tuple[StoreDatabase, Outbox]:
    db = StoreDatabase.open(path)
    return db, Outbox(db, max_bytes=max_bytes, max_age_s=max_age_s, clock=clock)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def outbox(tmp_path: Path, clock: FakeClock) -> Iterator[Outbox]:
    db, box = opened(tmp_path / "store.db", clock)
    yield box
    db.close()


def payloads(box: Outbox) -> list[bytes]:
    return [row.payload for row in box.pending(1000)]


def test_faults_go_first_then_health_then_telemetry_each_oldest_first(outbox: Outbox) -> None:
    outbox.put(TELEMETRY, "t", b"t1")
    outbox.put(HEALTH, "h", b"h1", retain=True)
    outbox.put(FAULT, "f", b"f1")
    outbox.put(TELEMETRY, "t", b"t2")
    outbox.put(FAULT, "f", b"f2")
    assert payloads(outbox) == [b"f1", b"f2", b"h1", b"t1", b"t2"]
    rows = outbox.pending(10)
    assert rows[2].retain and not rows[0].retain and rows[0].qos == 1


def test_pending_skips_rows_in_flight_and_respects_the_limit(outbox: Outbox) -> None:
    ids = [outbox.put(FAULT, "f", f"f{i}".encode()) or 0 for i in range(5)]
    assert [r.payload for r in outbox.pending(2, exclude={ids[0], ids[2]})] == [b"f1", b"f3"]
    assert outbox.pending(0) == []


def test_ack_deletes_only_its_row_and_ids_are_never_reused(outbox: Outbox) -> None:
    first = outbox.put(FAULT, "f", b"a")
    second = outbox.put(FAULT, "f", b"b")
    assert first is not None and second is not None
    assert outbox.ack(second) is True
    assert outbox.ack(second) is False
    third = outbox.put(FAULT, "f", b"c")
    assert third is not None and third > second  # a late PUBACK for `second` can't hit `third`
    assert payloads(outbox) == [b"a", b"c"]


def test_rows_survive_reopening_the_file(tmp_path: Path, clock: FakeClock) -> None:
    db, box = opened(tmp_path / "store.db", clock)
    box.put(TELEMETRY, "t", b"t1")
    box.put(FAULT, "f", b"f1")
    db.close()
    db, box = opened(tmp_path / "store.db", clock)
    assert payloads(box) == [b"f1", b"t1"]
    assert box.stats().rows == {FAULT: 1, OutboxKind.CONFIG_ACK: 0, HEALTH: 0, TELEMETRY: 1}
    db.close()


def test_sequence_is_monotonic_and_survives_a_restart(tmp_path: Path, clock: FakeClock) -> None:
    db, box = opened(tmp_path / "store.db", clock)
    assert [box.allocate_seq() for _ in range(3)] == [0, 1, 2]
    db.close()
    db, box = opened(tmp_path / "store.db", clock)
    assert box.peek_seq() == 3
    assert box.allocate_seq() == 3
    db.close()


def test_a_rolled_back_transaction_does_not_consume_a_sequence_number(outbox: Outbox, tmp_path: Path) -> None:
    db = outbox._db
    with pytest.raises(RuntimeError), db.transaction():
        outbox.allocate_seq()
        outbox.put(FAULT, "f", b"x")
        raise RuntimeError("building the message failed")
    assert outbox.peek_seq() == 0
    assert outbox.stats().depth == 0


def test_overflow_evicts_oldest_telemetry_first_and_never_faults(tmp_path: Path, clock: FakeClock) -> None:
    db, box = opened(tmp_path / "store.db", clock, max_bytes=64 * 1024)
    chunk = b"x" * 9_999  # + 1 byte topic = 10,000 bytes a row
    for i in range(3):
        box.put(FAULT, "f", chunk)
    for i in range(3):
        box.put(TELEMETRY, "t", bytes([i]) + chunk[1:])
    assert box.stats().bytes == 60_000
    # another fault does not fit: the oldest telemetry goes, no fault does
    box.put(FAULT, "f", chunk)
    kinds = [(r.kind, r.payload[:1]) for r in box.pending(100)]
    assert kinds == [(FAULT, b"x")] * 4 + [(TELEMETRY, b"\x01"), (TELEMETRY, b"\x02")]
    # faults keep coming: all telemetry is evicted, then faults are kept over budget
    for _ in range(4):
        assert box.put(FAULT, "f", chunk) is not None
    stats = box.stats()
    assert stats.rows == {FAULT: 8, OutboxKind.CONFIG_ACK: 0, HEALTH: 0, TELEMETRY: 0}
    assert stats.bytes > 64 * 1024
    assert box.over_budget() == 2
    assert box.drops() == {(TELEMETRY, DropReason.OVERFLOW): 3}
    # telemetry is refused now (the outbox holds only faults) and counted
    assert box.put(TELEMETRY, "t", chunk) is None
    assert box.drops()[(TELEMETRY, DropReason.OVERFLOW)] == 4
    db.close()
    db, box = opened(tmp_path / "store.db", clock, max_bytes=64 * 1024)
    assert box.drops()[(TELEMETRY, DropReason.OVERFLOW)] == 4  # counts are persisted
    assert box.stats().rows[FAULT] == 8
    db.close()


def test_telemetry_makes_room_by_evicting_older_telemetry_not_health(tmp_path: Path, clock: FakeClock) -> None:
    db, box = opened(tmp_path / "store.db", clock, max_bytes=64 * 1024)
    chunk = b"y" * 19_999
    box.put(HEALTH, "h", chunk, retain=True)
    box.put(TELEMETRY, "t", b"1" + chunk[1:])
    box.put(TELEMETRY, "t", b"2" + chunk[1:])
    box.put(TELEMETRY, "t", b"3" + chunk[1:])
    assert [r.payload[:1] for r in box.pending(10)] == [b"y", b"2", b"3"]
    assert box.drops() == {(TELEMETRY, DropReason.OVERFLOW): 1}
    assert box.put(TELEMETRY, "t", b"z" * 70_000) is None  # bigger than the whole budget: refused
    assert [r.payload[:1] for r in box.pending(10)] == [b"y", b"2", b"3"]
    db.close()


def test_old_telemetry_and_health_expire_but_faults_never_do(outbox: Outbox, clock: FakeClock) -> None:
    outbox.put(FAULT, "f", b"old fault")
    outbox.put(TELEMETRY, "t", b"old telemetry")
    outbox.put(HEALTH, "h", b"old health")
    clock.advance(1800)
    outbox.put(TELEMETRY, "t", b"newer telemetry")
    clock.advance(1801)  # the first three are now older than max_age_s=3600
    assert outbox.expire() == 2
    assert payloads(outbox) == [b"old fault", b"newer telemetry"]
    assert outbox.drops() == {(TELEMETRY, DropReason.EXPIRED): 1, (HEALTH, DropReason.EXPIRED): 1}
    assert outbox.stats().oldest_created_at == pytest.approx(clock.now().timestamp() - 3601)


def test_health_supersedes_older_health(outbox: Outbox) -> None:
    outbox.put(HEALTH, "h", b"h1", retain=True, supersede=True)
    outbox.put(HEALTH, "h", b"h2", retain=True, supersede=True)
    assert payloads(outbox) == [b"h2"]
    assert outbox.drops() == {(HEALTH, DropReason.SUPERSEDED): 1}


def test_stats_track_rows_and_bytes_by_kind(outbox: Outbox) -> None:
    assert outbox.stats().depth == 0 and outbox.stats().oldest_created_at is None
    row = outbox.put(FAULT, "topic", b"12345")
    outbox.put(TELEMETRY, "topic", b"123")
    stats = outbox.stats()
    assert (stats.depth, stats.bytes) == (2, 5 + 5 + 3 + 5)
    assert row is not None and outbox.ack(row)
    assert outbox.stats().rows[FAULT] == 0 and outbox.stats().bytes == 8


def test_config_acks_go_with_faults_are_never_evicted_or_expired_and_the_newest_supersedes(
        tmp_path: Path, clock: FakeClock) -> None:
    db, box = opened(tmp_path / "store.db", clock, max_bytes=64 * 1024, max_age_s=60)
    try:
        box.put(TELEMETRY, "t", b"t" * 20_000)
        box.put(HEALTH, "h", b"h1", retain=True)
        box.put(OutboxKind.CONFIG_ACK, "a", b"ack-v1", supersede=True)
        box.put(OutboxKind.CONFIG_ACK, "a", b"ack-v2", supersede=True)  # v1 was never sent: only v2 matters
        assert payloads(box) == [b"ack-v2", b"h1", b"t" * 20_000]
        clock.advance(120)  # older than max_age_s: health and telemetry expire, the ack stays
        box.put(TELEMETRY, "t", b"t" * 60_000)  # fills the outbox: evicts telemetry and health, never the ack
        assert b"ack-v2" in payloads(box) and b"h1" not in payloads(box)
        assert box.drops()[(OutboxKind.CONFIG_ACK, DropReason.SUPERSEDED)] == 1
    finally:
        db.close()
