"""ccTalk buffered events (protocols layer): headers 159 (bills) and 229 (coins). Pure.

A reply carries an event counter and 5 result pairs (A, B), newest first. The counter is 0
only after a reset or power-up, then counts 1..255 and wraps 255 -> 1. A host that sees the
counter move by more than 5 since its last poll has lost events ("poll too slow").
For bills, A != 0 is a credit (A = bill type, B = 0 stacked, 1 held in escrow) and A = 0
means B is an event code; for coins, A != 0 is a coin credit (B = sorter path), A = 0 means
B is an error code.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

from protocols.cctalk.errors import ReplyError
from protocols.cctalk.frame import parse_reply

RESULT_PAIRS = 5
EVENT_DATA_LENGTH = 1 + 2 * RESULT_PAIRS
COUNTER_MAX = 255


class BillEventCode(IntEnum):
    """Bill validator status codes (result B when A = 0), as listed in DEVICES.md §3."""

    BILL_RETURNED = 1
    INVALID_BILL_VALIDATION = 2
    INVALID_BILL_TRANSPORT = 3
    UNSAFE_JAM = 6  # bill jammed in transport, unsafe mode
    STACKER_JAM = 7
    STACKER_REMOVED = 11
    STACKER_FAULTY = 13
    STACKER_FULL = 14
    STACKER_JAMMED = 15
    SAFE_JAM = 16  # bill jammed in transport, safe mode
    OPTO_FRAUD = 17
    STRING_FRAUD = 18


class CoinErrorCode(IntEnum):
    """Coin acceptor error codes (result B when A = 0), as listed in DEVICES.md §3."""

    REJECT = 1
    CREDIT_SENSOR_BLOCKED = 14
    TOO_SLOW = 19
    COIN_ON_STRING = 20


JAM_CODES = frozenset(
    {BillEventCode.UNSAFE_JAM, BillEventCode.STACKER_JAM, BillEventCode.STACKER_JAMMED, BillEventCode.SAFE_JAM}
)


@dataclass(frozen=True, slots=True)
class EventResult:
    """One (A, B) result pair of the event buffer."""

    a: int
    b: int

    @property
    def is_credit(self) -> bool:
        return self.a != 0

    @property
    def bill_event(self) -> BillEventCode | None:
        """The bill status code, or None for a credit or a code not in BillEventCode."""
        if self.is_credit or self.b not in BillEventCode._value2member_map_:
            return None
        return BillEventCode(self.b)

    @property
    def coin_error(self) -> CoinErrorCode | None:
        if self.is_credit or self.b not in CoinErrorCode._value2member_map_:
            return None
        return CoinErrorCode(self.b)


@dataclass(frozen=True, slots=True)
class BufferedEvents:
    counter: int
    results: tuple[EventResult, ...]  # newest first, always 5

    def to_data(self) -> bytes:
        """The 11 data bytes of the reply (for simulators and tests)."""
        return bytes([self.counter, *(v for r in self.results for v in (r.a, r.b))])


def parse_event_data(data: bytes) -> BufferedEvents:
    if len(data) != EVENT_DATA_LENGTH:
        raise ReplyError(f"buffered events carry {EVENT_DATA_LENGTH} data bytes, got {len(data)}")
    results = tuple(EventResult(data[i], data[i + 1]) for i in range(1, EVENT_DATA_LENGTH, 2))
    return BufferedEvents(counter=data[0], results=results)


def parse_buffered_events(raw: bytes, *, device: int | None = None) -> BufferedEvents:
    """Decode a reply to header 159 or 229 (a whole frame). Raises from the ccTalk error tree."""
    return parse_event_data(parse_reply(raw, device=device).data)


def next_counter(counter: int) -> int:
    """The counter after one more event: 0 -> 1 ... 255 -> 1 (0 is never reached again)."""
    return 1 if counter >= COUNTER_MAX else counter + 1


def counter_steps(previous: int, current: int) -> int:
    """Events between two non-reset counter values, counting 255 -> 1 as one step."""
    if previous == 0:
        return current
    return (current - previous) % COUNTER_MAX


@dataclass(frozen=True, slots=True)
class TrackerUpdate:
    new: tuple[EventResult, ...] = ()  # oldest first
    lost: int = 0  # events that scrolled out of the 5-pair buffer between polls
    reset: bool = False  # the counter went back to 0: the device reset or powered up
    first: bool = False  # first poll: the counter is taken as the baseline, buffer is history


class EventTracker:
    """Turns successive buffered-event replies of one device into new events. Pure, no clock.

    The first reply only sets the baseline (events already in the buffer happened before we
    looked). A counter of 0 means the device reset; what it did before the reset is unknown.
    """

    def __init__(self) -> None:
        self._last: int | None = None

    @property
    def last_counter(self) -> int | None:
        return self._last

    def update(self, events: BufferedEvents) -> TrackerUpdate:
        previous, self._last = self._last, events.counter
        if previous is None:
            return TrackerUpdate(first=True, reset=events.counter == 0)
        if events.counter == 0:
            return TrackerUpdate(reset=previous != 0)
        steps = counter_steps(previous, events.counter)
        fresh = min(steps, RESULT_PAIRS)
        return TrackerUpdate(new=tuple(reversed(events.results[:fresh])), lost=steps - fresh)
