"""Simulated ccTalk bill validator (simulators layer): byte-exact replies from the codec.

Answers simple poll (254) with ACK, equipment category (245) with "Bill Validator", and read
buffered bill events (159) with its counter and last 5 results. Jams, stacker full and
credits are injected; the counter counts 1..255, wraps to 1, and is 0 only after reset. As
on a real bus, frames for another address or with a bad checksum get no answer at all;
unknown headers get NAK.
"""

from __future__ import annotations

from collections import deque

from protocols.cctalk import (
    BillEventCode,
    BufferedEvents,
    CcTalkError,
    DefaultAddress,
    EventResult,
    Header,
    build_ack,
    build_nak,
    decode_frame,
    frame_length,
    next_counter,
)
from protocols.cctalk.events import RESULT_PAIRS

CATEGORY = b"Bill Validator"


class SimulatedBillValidator:
    def __init__(self, address: int = DefaultAddress.BILL_VALIDATOR) -> None:
        self.address = address
        self.counter = 0
        self._results: deque[EventResult] = deque(maxlen=RESULT_PAIRS)  # newest first
        self.ignored = 0  # frames not answered: bad checksum, other address, malformed
        self.reset()

    def reset(self) -> None:
        """Power-up: counter 0, empty buffer."""
        self.counter = 0
        self._results.clear()
        self._results.extend(EventResult(0, 0) for _ in range(RESULT_PAIRS))

    def inject(self, code: BillEventCode | int) -> None:
        """A status event (A = 0, B = code): a jam, stacker full, a returned bill..."""
        self._push(EventResult(0, int(code)))

    def credit(self, bill_type: int, *, escrow: bool = False) -> None:
        if not 1 <= bill_type <= 255:
            raise ValueError(f"bill type {bill_type} outside 1..255")
        self._push(EventResult(bill_type, 1 if escrow else 0))

    def _push(self, result: EventResult) -> None:
        self.counter = next_counter(self.counter)
        self._results.appendleft(result)

    def buffered_events(self) -> BufferedEvents:
        return BufferedEvents(counter=self.counter, results=tuple(self._results))

    def request_length(self, buffer: bytes) -> int | None:
        return frame_length(buffer)

    def handle(self, request: bytes) -> bytes:
        try:
            frame = decode_frame(request)
        except CcTalkError:
            self.ignored += 1
            return b""
        if frame.dest != self.address:
            self.ignored += 1
            return b""
        reply_to = frame.source
        match frame.header:
            case Header.SIMPLE_POLL:
                return build_ack(source=self.address, dest=reply_to)
            case Header.REQUEST_EQUIPMENT_CATEGORY:
                return build_ack(source=self.address, dest=reply_to, data=CATEGORY)
            case Header.READ_BUFFERED_BILL_EVENTS:
                return build_ack(source=self.address, dest=reply_to, data=self.buffered_events().to_data())
            case _:
                return build_nak(source=self.address, dest=reply_to)
