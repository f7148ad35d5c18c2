"""Peripheral transport errors (edge layer), in the edge's one exception tree.

ccTalk checksum errors are ``edge.errors.BadCrc`` (counted as crc_errors), malformed or
unexpected replies ``BadFrame``, silence ``DeviceTimeout``; a device that answers NAK raises
``Nak`` (counted as exceptions: the device refused the command).
"""

from __future__ import annotations

from edge.errors import TransportError


class Nak(TransportError):
    """The ccTalk device answered NAK (header 5): it did not accept the command."""
