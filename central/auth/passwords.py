"""Password hashing (auth domain, pure): argon2id (argon2-cffi), with legacy scrypt hashes still accepted.

New hashes are argon2id in the PHC string format (`$argon2id$v=19$m=...,t=...,p=...$salt$hash`)
with argon2-cffi's default parameters (RFC 9106's low-memory profile: 64 MiB, 3 passes, 4
lanes). Hashes written by earlier releases (`scrypt$<n>$<r>$<p>$<salt b64>$<hash b64>`) still
verify, and `needs_rehash` says True for them, so a user's hash is upgraded to argon2id at
their next successful login (`central.auth.service.authenticate`).
"""

from __future__ import annotations

import base64
import hashlib
import hmac

from argon2 import PasswordHasher, extract_parameters
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from argon2.low_level import Type

_HASHER = PasswordHasher(type=Type.ID)
_ARGON2_PREFIX = "$argon2id$"

# legacy scrypt: verified, never written
_SCRYPT_PREFIX = "scrypt$"
_MAX_N = 2**20  # refuse stored parameters that would exhaust memory
_HASH_BYTES = 32


def hash_password(password: str) -> str:
    if not password:
        raise ValueError("a password must not be empty")
    return _HASHER.hash(password)


def _parse_scrypt(encoded: str) -> tuple[int, int, int, bytes, bytes]:
    scheme, n, r, p, salt, digest = encoded.split("$")
    if scheme != "scrypt":
        raise ValueError(f"unknown password hash scheme {scheme!r}")
    n_i, r_i, p_i = int(n), int(r), int(p)
    if not (2 <= n_i <= _MAX_N and n_i & (n_i - 1) == 0 and 1 <= r_i <= 32 and 1 <= p_i <= 16):
        raise ValueError("password hash parameters out of range")
    return n_i, r_i, p_i, base64.b64decode(salt, validate=True), base64.b64decode(digest, validate=True)


def _verify_scrypt(password: str, encoded: str) -> bool:
    try:
        n, r, p, salt, expected = _parse_scrypt(encoded)
    except ValueError:
        return False
    actual = hashlib.scrypt(password.encode("utf-8"), salt=salt, n=n, r=r, p=p,
                            maxmem=2 * 128 * r * n + 1024 * 1024, dklen=len(expected) or _HASH_BYTES)
    return hmac.compare_digest(actual, expected)


def _argon2_ok(encoded: str) -> bool:
    """A well-formed argon2id PHC string (parsed, not verified: verifying costs a full hash)."""
    try:
        extract_parameters(encoded)
        *_, salt, digest = encoded.split("$")
        for part in (salt, digest):
            base64.b64decode(part + "=" * (-len(part) % 4), validate=True)
    except (InvalidHashError, ValueError):
        return False
    return bool(salt and digest)


def is_password_hash(encoded: str) -> bool:
    """True for an argon2id hash or a well-formed legacy scrypt hash."""
    if encoded.startswith(_ARGON2_PREFIX):
        return _argon2_ok(encoded)
    try:
        _parse_scrypt(encoded)
    except ValueError:
        return False
    return True


def verify_password(password: str, encoded: str) -> bool:
    """True when `password` matches; a malformed or foreign hash never matches.

    Both schemes compare in constant time (argon2-cffi's verify; hmac.compare_digest for scrypt).
    """
    if encoded.startswith(_ARGON2_PREFIX):
        try:
            return _HASHER.verify(encoded, password)
        except (VerifyMismatchError, InvalidHashError, VerificationError, ValueError):
            return False
    if encoded.startswith(_SCRYPT_PREFIX):
        return _verify_scrypt(password, encoded)
    return False


def needs_rehash(encoded: str) -> bool:
    """True unless `encoded` is argon2id with today's parameters (scrypt and broken hashes: True)."""
    if not encoded.startswith(_ARGON2_PREFIX):
        return True
    try:
        return _HASHER.check_needs_rehash(encoded)
    except (InvalidHashError, ValueError):
        return True


# Verified against when the username is unknown, so a probe cannot tell users apart by timing.
DUMMY_HASH = "$argon2id$v=19$m=65536,t=3,p=4$dgtBDgSMjyo+2Ll1BTNwbg$MM4vLkS04eiYxQfDvNW4G3xORbaT1aPMPBhFP9sygBo"
