"""Adaptive response timeouts (edge layer): how long one Modbus request may wait. Pure.

A dead device costs one full timeout per probe, and the profile's timeout (150 to 1000 ms)
is sized for the slowest answer the device may ever give, not for what it gives now. So
each bus learns how fast its devices answer, the way TCP learns its retransmission timeout
(RFC 6298): per device, and for the bus as a whole, a smoothed latency ``srtt`` and its mean
deviation ``rttvar`` (gains 1/8 and 1/4). A request then waits

    min(configured, (wire + max(floor, srtt + max(G, 4 * rttvar))) * 2**timeouts_in_a_row)

``wire`` is the time the request and its response take on the line at the bus baud rate
(0 on TCP); the estimates are of the latency *beyond* it, so one device's 1-register and
32-register reads share them. The serial RTU transport adds the wire time to the timeout
it is given (as it does to the profile's), so there ``wire`` is left out of what is
passed. ``floor`` covers two t3.5 gaps plus ``G`` on a serial line, or a fixed network
floor on TCP; ``G`` is the slack for turnaround and event-loop jitter.

Which estimate: the device's own once it has answered; before that, the bus's (a device
that never answered is probed as fast as its neighbours answer, not at the profile's
500 ms); before anything on the bus answered, the configured timeout.

Safety for slow devices (never declared dead because the estimate was too tight):
* every timeout doubles the device's next wait (TCP's backoff), reset by an answer;
* the poll that would take a device offline (its K-th failure in a row) waits the full
  configured timeout, so "offline" always means "silent for the profile's timeout";
* an offline device is probed at the learned timeout, but every ``full_every``-th probe
  waits the full configured timeout, so a device that comes back slower than the bus
  still gets found.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from protocols.modbus.pdu import expected_response_length
from protocols.modbus.rtu import t35, wire_time

ALPHA = 1 / 8  # RFC 6298 gains
BETA = 1 / 4
K = 4

RTU_OVERHEAD = 3  # unit id + CRC around a PDU


@dataclass(frozen=True, slots=True)
class TimeoutSettings:
    adaptive: bool = True
    slack_s: float = 0.02  # G: turnaround and scheduling jitter on top of the estimate
    network_floor_s: float = 0.1  # floor beyond the wire time on TCP and RTU-over-TCP
    full_every: int = 4  # every n-th probe of an offline device waits the configured timeout


@dataclass(slots=True)
class LatencyEstimate:
    """RFC 6298 smoothed latency and mean deviation, in seconds."""

    srtt: float | None = None
    rttvar: float = 0.0

    def sample(self, seconds: float) -> None:
        if self.srtt is None:
            self.srtt, self.rttvar = seconds, seconds / 2
            return
        self.rttvar = (1 - BETA) * self.rttvar + BETA * abs(self.srtt - seconds)
        self.srtt = (1 - ALPHA) * self.srtt + ALPHA * seconds

    def rto(self, slack_s: float) -> float | None:
        if self.srtt is None:
            return None
        return self.srtt + max(slack_s, K * self.rttvar)


@dataclass(slots=True)
class _Device:
    estimate: LatencyEstimate = field(default_factory=LatencyEstimate)
    timeouts: int = 0  # in a row


def rtu_wire_time(request_pdu: bytes, baudrate: int) -> float:
    """Request and response frames on the line (exception-free response)."""
    response = expected_response_length(request_pdu)
    return wire_time(len(request_pdu) + RTU_OVERHEAD + response + RTU_OVERHEAD, baudrate)


class ResponseTimer:
    """The adaptive timeouts of one bus. ``baudrate`` None: not a serial line seen from here."""

    def __init__(
        self, baudrate: int | None, settings: TimeoutSettings | None = None, *, transport_adds_wire: bool = False
    ) -> None:
        self.settings = settings or TimeoutSettings()
        self._baudrate = baudrate
        self._adds_wire = transport_adds_wire  # the serial transport waits timeout + wire time itself
        if baudrate is None:
            self._floor = self.settings.network_floor_s
        else:
            self._floor = 2 * t35(baudrate) + self.settings.slack_s
        self.bus = LatencyEstimate()
        self._devices: dict[str, _Device] = {}
        self._wire: dict[bytes, float] = {}

    def wire(self, request_pdu: bytes) -> float:
        if self._baudrate is None:
            return 0.0
        wire = self._wire.get(request_pdu)
        if wire is None:
            wire = self._wire[request_pdu] = rtu_wire_time(request_pdu, self._baudrate)
        return wire

    def timeout(self, device_id: str, request_pdu: bytes, configured: float, *, full: bool, offline: bool) -> float:
        """How long this request may wait. ``full``: the configured timeout, whatever was learned;
        ``offline``: a probe of an offline device, which does not double per timeout."""
        if full or not self.settings.adaptive:
            return configured
        state = self._devices.get(device_id)
        beyond = state.estimate.rto(self.settings.slack_s) if state is not None else None
        if beyond is None:
            beyond = self.bus.rto(self.settings.slack_s)
            if beyond is None:
                return configured
        backoff = 2 ** min(state.timeouts, 16) if state is not None and not offline else 1
        wire = 0.0 if self._adds_wire else self.wire(request_pdu)
        return min(configured, (wire + max(self._floor, beyond)) * backoff)

    def answered(self, device_id: str, request_pdu: bytes, latency: float) -> None:
        beyond = max(0.0, latency - self.wire(request_pdu))
        state = self._devices.get(device_id)
        if state is None:
            state = self._devices[device_id] = _Device()
        state.estimate.sample(beyond)
        state.timeouts = 0
        self.bus.sample(beyond)

    def timed_out(self, device_id: str) -> None:
        state = self._devices.get(device_id)
        if state is None:
            state = self._devices[device_id] = _Device()
        state.timeouts += 1

    def bus_timeout(self) -> float | None:
        """The learned wait beyond the wire time for a device that never answered (metrics)."""
        beyond = self.bus.rto(self.settings.slack_s)
        return None if beyond is None else max(self._floor, beyond)


def full_timeout_due(*, offline: bool, consecutive_failures: int, after_failures: int, full_every: int) -> bool:
    """Whether the next poll must wait the configured timeout (see the module docstring)."""
    if not offline:
        return consecutive_failures >= after_failures - 1
    return (consecutive_failures - after_failures) % full_every == full_every - 1
