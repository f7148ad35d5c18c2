"""Builders and probes shared by central's integration tests."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select, update

from central.auth.models import User
from central.db import Database
from central.ingest.processor import Ingestor, Result
from central.outbox.models import OutboundMessage
from central.technicians.models import Technician
from central.tickets.models import Ticket, TicketEvent, WorkTemplate
from protocols.mqtt.messages import FaultEvent, Message, StoreHealth, TelemetryBatch, TicketStatus
from protocols.mqtt.topics import TopicKind, topic

PASSWORD = "correct-horse-battery"
T0 = datetime(2026, 1, 5, 8, 0, tzinfo=UTC)
_KIND = {FaultEvent: TopicKind.FAULT, TelemetryBatch: TopicKind.TELEMETRY, StoreHealth: TopicKind.HEALTH}

SEED_USERS = [  # olga first: the lowest technician id, but inactive
    ("olga", "Olga Old", "technician", ["refrigeration"], False),
    ("tina", "Tina Tech", "technician", ["refrigeration"], True),
    ("rita", "Rita Cool", "technician", ["refrigeration", "electrical"], True),
    ("sam", "Sam Checkout", "technician", ["self_checkout"], True),
    ("dora", "Dora Dispatch", "dispatcher", [], True),
    ("adam", "Adam Admin", "admin", [], True),
    ("stan", "Stan Store", "store_staff", [], True),  # of store-1 (SEED_EXTRA)
    ("sunny", "Sunny Supervisor", "supervisor", [], True),
    ("reggie", "Reggie Regional", "regional_manager", [], True),
    ("fay", "Fay Facilities", "facilities", [], True),
    ("nell", "Nell Nostore", "store_staff", [], True),  # store staff with no store: sees nothing
]
SEED_EXTRA = {"stan": "    store: store-1", "sunny": "    region: south", "reggie": "    region: south"}


def seed_yaml(password_hash: str) -> str:
    lines = ["users:"]
    for username, name, role, skills, active in SEED_USERS:
        lines.append(f"  - username: {username}\n    display_name: {name}\n    role: {role}\n"
                     f"    password_hash: \"{password_hash}\"\n    active: {str(active).lower()}")
        if role == "technician":
            lines.append(f"    skills: [{', '.join(skills)}]\n    region: north")
        if username in SEED_EXTRA:
            lines.append(SEED_EXTRA[username])
    return "\n".join(lines) + "\n"


def fault(
    store: str = "store-1", device: str = "case-01", code: str = "high_temperature", *, state: str = "raised",
    model: str = "dixell-xr75cx", seq: int = 1, at: datetime = T0, **changes: Any,
) -> FaultEvent:  # fmt: skip
    fields: dict[str, Any] = dict(
        store_id=store, seq=seq, device_id=device, device_model=model, fault_code=code, state=state,
        severity="major", fault_class="food_safety", ticket_class="repair", occurred_at=at,
        description="Cabinet air above the high limit", location="Aisle 3",
        evidence={"point": "air_temp", "value": 9.4, "limit": 8.0},
    )
    fields.update(changes)
    return FaultEvent.model_validate(fields)


def topic_of(message: Message) -> str:
    return topic(message.store_id, _KIND[type(message)])


def send(ingestor: Ingestor, message: Message) -> Result:
    return ingestor.process(topic_of(message), message.to_bytes())


def tickets(database: Database) -> list[Ticket]:
    with database.session() as session:
        return list(session.scalars(select(Ticket).order_by(Ticket.id)))


def events(database: Database, ticket_id: int) -> list[TicketEvent]:
    with database.session() as session:
        return list(session.scalars(select(TicketEvent).where(TicketEvent.ticket_id == ticket_id)
                                    .order_by(TicketEvent.id)))


def statuses(database: Database, ticket_id: int | None = None) -> list[TicketStatus]:
    with database.session() as session:
        query = select(OutboundMessage).order_by(OutboundMessage.id)
        if ticket_id is not None:
            query = query.where(OutboundMessage.ticket_id == ticket_id)
        return [TicketStatus.model_validate_json(row.payload) for row in session.scalars(query)]


def technician_id(database: Database, username: str) -> int:
    with database.session() as session:
        return session.scalars(select(Technician.id).join(User).where(User.username == username)).one()


def wait_until(predicate: Callable[[], object], timeout: float = 10.0, interval: float = 0.05) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout} s")
        time.sleep(interval)


def set_templates(database: Database | str, *, enabled: bool) -> None:
    """Switch the linked-work templates on or off (tests not about them count no store tasks)."""
    own = isinstance(database, str)
    db = Database(database) if isinstance(database, str) else database
    try:
        with db.session() as session, session.begin():
            session.execute(update(WorkTemplate).values(enabled=enabled))
    finally:
        if own:
            db.dispose()
