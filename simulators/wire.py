"""Server-side framing (simulators layer): where an RTU request ends, and faulty answers.

Pure functions over bytes. An RTU slave has no length field to go by: it knows the length
of each request from the function code (and the byte count of writes), and falls back on
the inter-frame silence for functions it does not know. Framing faults turn a correct
answer into what a failing device or a noisy line produces.
"""

from __future__ import annotations

from protocols.modbus import rtu, tcp
from simulators.faults import Fault

# Request lengths (unit + PDU + CRC) of the fixed-size requests.
_FIXED_REQUEST_LENGTH = {
    0x01: 8,  # read coils
    0x02: 8,  # read discrete inputs
    0x03: 8,  # read holding registers
    0x04: 8,  # read input registers
    0x05: 8,  # write single coil
    0x06: 8,  # write single register
    0x07: 4,  # read exception status
    0x08: 8,  # diagnostics (sub-function + one data word)
    0x11: 4,  # report server id
    0x16: 10,  # mask write register
}
_COUNTED_REQUESTS = (0x0F, 0x10)  # write multiple coils / registers: byte count at offset 6


def rtu_request_length(buffer: bytes | bytearray) -> int | None:
    """Total length of the RTU request at the start of `buffer`.

    0 = too few bytes yet to tell; None = the function code does not say (frame by silence).
    """
    if len(buffer) < 2:
        return 0
    function = buffer[1]
    if function in _FIXED_REQUEST_LENGTH:
        return _FIXED_REQUEST_LENGTH[function]
    if function in _COUNTED_REQUESTS:
        return 0 if len(buffer) < 7 else 9 + buffer[6]
    return None


def wrong_unit(unit: int) -> int:
    """The unit id a `wrong_unit` device answers from: the next one on the bus."""
    return unit % 247 + 1


def rtu_response(unit: int, pdu: bytes, fault: Fault | None = None) -> bytes:
    """The RTU frame a device sends for `pdu`, spoiled by a framing fault if one is active."""
    frame = rtu.encode_frame(wrong_unit(unit) if fault is Fault.WRONG_UNIT else unit, pdu)
    if fault is Fault.GARBAGE:
        return frame[:-2] + bytes((frame[-2] ^ 0xFF, frame[-1] ^ 0xFF))
    if fault is Fault.TRUNCATED:
        return frame[: len(frame) // 2]
    return frame


def tcp_response(transaction_id: int, unit: int, pdu: bytes, fault: Fault | None = None) -> bytes:
    """The MBAP frame for `pdu`; `garbage` corrupts the protocol id (TCP has no CRC to spoil)."""
    frame = tcp.encode_frame(transaction_id, wrong_unit(unit) if fault is Fault.WRONG_UNIT else unit, pdu)
    if fault is Fault.GARBAGE:
        return frame[:2] + b"\xde\xad" + frame[4:]
    if fault is Fault.TRUNCATED:
        return frame[: len(frame) // 2]
    return frame
