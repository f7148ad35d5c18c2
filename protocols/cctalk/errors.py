"""ccTalk error tree (protocols layer). Every ccTalk codec failure is one of these."""

from __future__ import annotations


class CcTalkError(Exception):
    """Base of every ccTalk failure raised by StoreGuard."""


class FrameError(CcTalkError):
    """A frame is malformed: truncated, wrong length byte, bad checksum, or a bad reply."""


class TruncatedFrameError(FrameError):
    """Fewer bytes than the 5-byte minimum or than the length byte announces (timeout, noise)."""


class LengthMismatchError(FrameError):
    """More bytes than the length byte announces: two frames run together, or a wrong length byte."""


class ChecksumError(FrameError):
    """The bytes of a frame do not sum to 0 mod 256 (line noise, collision on the bus)."""


class NakError(CcTalkError):
    """The device answered NAK (header 5): it did not accept the command or its data."""


class ReplyError(FrameError):
    """A reply is well framed but not what was asked for: wrong addresses, header or data length."""
