"""ccTalk framing (protocols layer): `[dest][length][source][header][data...][checksum]`. Pure.

The simple checksum makes every byte of the frame sum to 0 mod 256. `length` counts only the
data bytes, so a frame is 5 + length bytes long. Replies carry header 0 (ACK, with any data)
or 5 (NAK).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

from protocols.cctalk.errors import ChecksumError, LengthMismatchError, NakError, ReplyError, TruncatedFrameError

HOST_ADDRESS = 1
MIN_FRAME = 5  # dest, length, source, header, checksum
MAX_DATA = 252  # a frame is at most 257 bytes on the wire (ccTalk generic spec)


class Header(IntEnum):
    """The ccTalk headers StoreGuard uses."""

    ACK = 0
    NAK = 5
    READ_BUFFERED_BILL_EVENTS = 159
    READ_BUFFERED_CREDIT_OR_ERROR_CODES = 229
    REQUEST_EQUIPMENT_CATEGORY = 245
    SIMPLE_POLL = 254


class DefaultAddress(IntEnum):
    """Factory addresses (DEVICES.md marks the device ones unverified; profiles should set them)."""

    HOST = 1
    COIN_ACCEPTOR = 2
    HOPPER = 3
    BILL_VALIDATOR = 40


@dataclass(frozen=True, slots=True)
class Frame:
    dest: int
    source: int
    header: int
    data: bytes = b""

    def __post_init__(self) -> None:
        for name in ("dest", "source", "header"):
            value = getattr(self, name)
            if not 0 <= value <= 0xFF:
                raise ValueError(f"{name} {value} outside 0..255")
        if len(self.data) > MAX_DATA:
            raise ValueError(f"{len(self.data)} data bytes, at most {MAX_DATA}")


def checksum(body: bytes) -> int:
    """The simple checksum: the byte that brings the sum of all frame bytes to 0 mod 256."""
    return -sum(body) & 0xFF


def encode_frame(frame: Frame) -> bytes:
    body = bytes([frame.dest, len(frame.data), frame.source, frame.header]) + frame.data
    return body + bytes([checksum(body)])


def frame_length(buffer: bytes) -> int | None:
    """Bytes of the frame starting at buffer[0], or None until the length byte has arrived."""
    if len(buffer) < 2:
        return None
    return MIN_FRAME + buffer[1]


def decode_frame(raw: bytes) -> Frame:
    """Decode exactly one frame. Raises TruncatedFrameError, LengthMismatchError, ChecksumError."""
    raw = bytes(raw)
    if len(raw) < MIN_FRAME:
        raise TruncatedFrameError(f"ccTalk frame of {len(raw)} bytes is shorter than the 5-byte minimum")
    expected = MIN_FRAME + raw[1]
    if len(raw) < expected:
        raise TruncatedFrameError(f"length byte announces {raw[1]} data bytes ({expected} in all), got {len(raw)}")
    if len(raw) > expected:
        raise LengthMismatchError(f"length byte announces {raw[1]} data bytes ({expected} in all), got {len(raw)}")
    total = sum(raw) & 0xFF
    if total != 0:
        raise ChecksumError(f"frame bytes sum to 0x{total:02X} mod 256, not 0: {raw.hex(' ')}")
    return Frame(dest=raw[0], source=raw[2], header=raw[3], data=raw[4:-1])


def build_request(header: Header | int, *, dest: int, source: int = HOST_ADDRESS, data: bytes = b"") -> bytes:
    return encode_frame(Frame(dest=dest, source=source, header=int(header), data=data))


def build_simple_poll(dest: int, *, source: int = HOST_ADDRESS) -> bytes:
    """Header 254: the device answers ACK with no data."""
    return build_request(Header.SIMPLE_POLL, dest=dest, source=source)


def build_request_equipment_category(dest: int, *, source: int = HOST_ADDRESS) -> bytes:
    """Header 245: the device answers its category as ASCII, e.g. "Bill Validator"."""
    return build_request(Header.REQUEST_EQUIPMENT_CATEGORY, dest=dest, source=source)


def build_read_buffered_bill_events(dest: int, *, source: int = HOST_ADDRESS) -> bytes:
    """Header 159: event counter + 5 result pairs of a bill validator."""
    return build_request(Header.READ_BUFFERED_BILL_EVENTS, dest=dest, source=source)


def build_read_buffered_credit_or_error_codes(dest: int, *, source: int = HOST_ADDRESS) -> bytes:
    """Header 229: event counter + 5 result pairs of a coin acceptor."""
    return build_request(Header.READ_BUFFERED_CREDIT_OR_ERROR_CODES, dest=dest, source=source)


def build_ack(*, source: int, dest: int = HOST_ADDRESS, data: bytes = b"") -> bytes:
    """A device's reply: header 0, with the answer's data."""
    return build_request(Header.ACK, dest=dest, source=source, data=data)


def build_nak(*, source: int, dest: int = HOST_ADDRESS) -> bytes:
    return build_request(Header.NAK, dest=dest, source=source)


def parse_reply(raw: bytes, *, device: int | None = None, host: int = HOST_ADDRESS) -> Frame:
    """Decode a device's reply to the host. Raises NakError on NAK, ReplyError on anything but ACK.

    `device`, when given, must be the reply's source address.
    """
    frame = decode_frame(raw)
    if frame.dest != host:
        raise ReplyError(f"reply addressed to {frame.dest}, not to host {host}")
    if device is not None and frame.source != device:
        raise ReplyError(f"reply from address {frame.source}, expected {device}")
    if frame.header == Header.NAK:
        raise NakError(f"device {frame.source} answered NAK")
    if frame.header != Header.ACK:
        raise ReplyError(f"reply header {frame.header}, expected 0 (ACK) or 5 (NAK)")
    return frame


def parse_equipment_category(raw: bytes, *, device: int | None = None) -> str:
    """The ASCII category of a reply to header 245 (e.g. "Bill Validator", "Coin Acceptor")."""
    data = parse_reply(raw, device=device).data
    try:
        return data.decode("ascii")
    except UnicodeDecodeError as exc:
        raise ReplyError(f"equipment category is not ASCII: {data.hex(' ')}") from exc
