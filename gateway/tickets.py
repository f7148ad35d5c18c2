"""Ticket statuses received from central (gateway layer), kept in the store database.

Per ticket: the latest status by `version` (a late, older version never overwrites a newer
one) and the ordered list of statuses as they were received. A redelivered message (same
ticket and version) is recognised and not recorded twice.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from edge.clock import Clock
from gateway.storage import StoreDatabase
from protocols.mqtt.messages import TicketStatus


class RecordOutcome(StrEnum):
    LATEST = "latest"  # the newest version of its ticket so far
    STALE = "stale"  # an older version arriving late: logged as received, not shown as current
    DUPLICATE = "duplicate"  # this ticket version was already received


@dataclass(frozen=True, slots=True)
class Receipt:
    """One status as it reached the store: central's change time against the arrival time."""

    version: int
    status: str
    changed_at: float  # unix seconds, central's clock
    received_at: float  # unix seconds, the store's clock


@dataclass(frozen=True, slots=True)
class TicketView:
    status: TicketStatus
    receipts: tuple[Receipt, ...]  # in arrival order
    received_at: float  # when the latest version arrived (unix seconds)

    @property
    def statuses_received(self) -> tuple[str, ...]:
        return tuple(receipt.status for receipt in self.receipts)


class TicketBook:
    def __init__(self, db: StoreDatabase, clock: Clock) -> None:
        self._db = db
        self._clock = clock

    def record(self, status: TicketStatus) -> RecordOutcome:
        now = self._clock.now().timestamp()
        with self._db.transaction():
            inserted = self._db.execute(
                "INSERT OR IGNORE INTO ticket_received"
                " (ticket_id, version, status, message_id, changed_at, received_at) VALUES (?, ?, ?, ?, ?, ?)",
                (status.ticket_id, status.version, status.status.value, status.message_id,
                 status.changed_at.timestamp(), now),
            ).rowcount
            if not inserted:
                return RecordOutcome.DUPLICATE
            replaced = self._db.execute(
                "INSERT INTO ticket_latest (ticket_id, version, payload, received_at) VALUES (?, ?, ?, ?)"
                " ON CONFLICT(ticket_id) DO UPDATE SET version = excluded.version, payload = excluded.payload,"
                " received_at = excluded.received_at WHERE excluded.version > ticket_latest.version",
                (status.ticket_id, status.version, status.model_dump_json(), now),
            ).rowcount
        return RecordOutcome.LATEST if replaced else RecordOutcome.STALE

    def tickets(self) -> list[TicketView]:
        """The latest status of every ticket, by ticket id, with the statuses received in order."""
        received: dict[int, list[Receipt]] = {}
        for ticket_id, version, value, changed_at, arrived in self._db.execute(
            "SELECT ticket_id, version, status, changed_at, received_at FROM ticket_received ORDER BY id"
        ):
            received.setdefault(ticket_id, []).append(Receipt(version, value, changed_at, arrived))
        return [
            TicketView(
                status=TicketStatus.model_validate_json(payload),
                receipts=tuple(received.get(ticket_id, ())),
                received_at=received_at,
            )
            for ticket_id, payload, received_at in self._db.execute(
                "SELECT ticket_id, payload, received_at FROM ticket_latest ORDER BY ticket_id"
            )
        ]
