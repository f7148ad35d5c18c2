"""ccTalk bill validator poller (edge layer): simple poll, then the buffered bill events.

Every poll sends simple poll (254), which must be ACKed, then read buffered bill events
(159). ``protocols.cctalk.EventTracker`` turns successive replies into new events and
counts the lost ones (the counter moved by more than the 5-event buffer): a poll that lost
events reports the ``events_lost`` condition (and ``events_lost_total`` counts them all).

Event-type conditions latch. A condition's codes (``CCTALK_EVENT_CONDITIONS``) set it; it
stays set until the validator reports it over: a later credit (A != 0: a bill went through,
so the transport and stacker work), a reset (counter back to 0: power-up, which is how an
attendant clears a jam), or one of its ``CCTALK_CLEARED_BY`` codes (stacker removed clears
stacker full). The first reply only sets the counter baseline, except that a condition
event at the top of the buffer (the validator's latest word) is taken as still present; old
history never clears anything (a restored fault keeps its latch until something new does).

The echo: on a single-wire ccTalk bus the host reads back its own request before the
reply. ``echo="on"`` expects it, ``"off"`` does not, ``"auto"`` strips it when the bytes
received start with the request's destination address (a reply starts with the host's
address, 1, and devices never use 1). An echo that differs from the request is a collision.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal

from device_profiles.peripheral import CCTALK_CLEARED_BY, CCTALK_EVENT_CONDITIONS, EVENTS_LOST
from edge.errors import BadCrc, BadFrame, TransportError
from edge.metrics import RequestCounters
from edge.peripherals.device import PollResult
from edge.peripherals.errors import Nak
from edge.peripherals.transport import ByteTransport, ReplyLength, count_failure, counted_exchange
from protocols.cctalk import (
    BufferedEvents,
    CcTalkError,
    ChecksumError,
    EventResult,
    EventTracker,
    NakError,
    build_read_buffered_bill_events,
    build_simple_poll,
    frame_length,
    parse_event_data,
    parse_reply,
)

Echo = Literal["auto", "on", "off"]


class CcTalkPoller:
    requests_per_poll = 2

    def __init__(
        self,
        address: int,
        *,
        echo: Echo = "auto",
        conditions: Mapping[str, frozenset[int]] | None = None,
        cleared_by: Mapping[str, frozenset[int]] | None = None,
    ) -> None:
        self.address = address
        self.echo: Echo = echo
        self._codes = {k: frozenset(int(c) for c in v) for k, v in (conditions or CCTALK_EVENT_CONDITIONS).items()}
        self._cleared_by = {k: frozenset(int(c) for c in v) for k, v in (cleared_by or CCTALK_CLEARED_BY).items()}
        self.tracker = EventTracker()
        self.latched: dict[str, bool] = dict.fromkeys(self._codes, False)
        self.echo_seen: bool | None = None  # what auto found on the last reply
        self.events_lost_total = 0
        self.resets = 0
        self._last_code: int | None = None

    def latch(self, condition: str) -> None:
        if condition in self.latched:
            self.latched[condition] = True

    async def poll(
        self, transport: ByteTransport, timeout: float, counters: tuple[RequestCounters, ...]
    ) -> PollResult:
        await self._request(transport, build_simple_poll(self.address), timeout, counters)
        data = await self._request(transport, build_read_buffered_bill_events(self.address), timeout, counters)
        try:
            events = parse_event_data(data)
        except CcTalkError as exc:
            raise self._refused(counters, BadFrame(f"ccTalk {self.address}: {exc}"), exc) from exc
        lost = self._track(events)
        conditions = {**self.latched, EVENTS_LOST: lost > 0}
        evidence: dict[str, float | int | bool | str | None] = {
            "cctalk_address": self.address,
            "event_counter": events.counter,
            "events_lost": lost,
            "last_event_code": self._last_code,
            "echo": self.echo_seen,
        }
        return PollResult(
            conditions=conditions,
            values={"event_counter": events.counter, "events_lost_total": self.events_lost_total},
            evidence=evidence,
        )

    def _track(self, events: BufferedEvents) -> int:
        update = self.tracker.update(events)
        if update.reset and not update.first:
            self.resets += 1
            self.latched = dict.fromkeys(self.latched, False)
        if update.first and events.counter and not events.results[0].is_credit:
            self._apply(events.results[0])  # the latest word of a validator we just met (sets only)
        for result in update.new:
            self._apply(result)
        self.events_lost_total += update.lost
        return update.lost

    def _apply(self, result: EventResult) -> None:
        if result.is_credit:
            self.latched = dict.fromkeys(self.latched, False)
            return
        self._last_code = result.b
        for name, codes in self._cleared_by.items():
            if result.b in codes and name in self.latched:
                self.latched[name] = False
        for name, codes in self._codes.items():
            if result.b in codes:
                self.latched[name] = True

    # --- one request ---------------------------------------------------------------------------

    async def _request(
        self, transport: ByteTransport, request: bytes, timeout: float, counters: tuple[RequestCounters, ...]
    ) -> bytes:
        """The data of the ACK to ``request``, the echo stripped."""
        raw = await counted_exchange(transport, request, self._reply_length(request), timeout, counters)
        skip = len(request) if self._has_echo(raw, request) else 0
        self.echo_seen = skip > 0
        if skip and raw[:skip] != request:
            error = BadFrame(f"ccTalk {self.address}: echo {raw[:skip].hex(' ')} differs from the request (collision)")
            raise self._refused(counters, error, None)
        try:
            return parse_reply(raw[skip:], device=self.address).data
        except NakError as exc:
            nak = Nak(f"ccTalk {self.address} answered NAK to header {request[3]}")
            raise self._refused(counters, nak, exc) from exc
        except ChecksumError as exc:
            raise self._refused(counters, BadCrc(f"ccTalk {self.address}: {exc}"), exc) from exc
        except CcTalkError as exc:
            raise self._refused(counters, BadFrame(f"ccTalk {self.address}: {exc}"), exc) from exc

    def _has_echo(self, buffer: bytes, request: bytes) -> bool:
        if self.echo == "auto":
            return bool(buffer) and buffer[0] == request[0]
        return self.echo == "on"

    def _reply_length(self, request: bytes) -> ReplyLength:
        def length(buffer: bytes) -> int | None:
            skip = len(request) if self._has_echo(buffer, request) else 0
            if len(buffer) < skip:
                return None
            n = frame_length(buffer[skip:])
            return None if n is None else skip + n

        return length

    @staticmethod
    def _refused(
        counters: tuple[RequestCounters, ...], error: TransportError, cause: Exception | None
    ) -> TransportError:
        count_failure(counters, error)
        if cause is not None:
            error.__cause__ = cause
        return error
