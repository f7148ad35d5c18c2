"""The transport interface (edge layer): one request PDU to one unit, one response PDU back.

A transport frames, sends and receives; it does not retry, schedule or decode. It raises
only ``edge.errors.TransportError`` subclasses. A bus scheduler keeps one request in flight,
but transports also serialise callers with a lock, so misuse cannot interleave frames.
"""

from __future__ import annotations

from typing import Protocol

from edge.errors import BadFrame, DeviceException


class Transport(Protocol):
    @property
    def name(self) -> str:
        """A label for logs and metrics: the port path or host:port."""
        ...

    async def open(self) -> None:
        """Connect if possible. A port that cannot be opened yet is retried by ``request``."""
        ...

    async def close(self) -> None: ...

    async def request(self, unit: int, pdu: bytes, timeout: float) -> bytes:
        """Send ``pdu`` to ``unit`` and return the normal response PDU.

        Raises DeviceTimeout, BadFrame (BadCrc), DeviceException or LinkDown.
        """
        ...


def check_response(request: bytes, response: bytes) -> bytes:
    """Reject a response PDU that does not answer ``request``; raise its exception code."""
    if not response:
        raise BadFrame("empty response PDU")
    function = request[0]
    if response[0] == function | 0x80:
        if len(response) != 2:
            raise BadFrame(f"exception response of {len(response)} bytes, expected 2")
        raise DeviceException(function, response[1])
    if response[0] != function:
        raise BadFrame(f"response function 0x{response[0]:02X} does not answer request 0x{function:02X}")
    return response
