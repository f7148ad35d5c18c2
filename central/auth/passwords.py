"""Password hashing (auth domain, pure): scrypt with a random salt, constant-time compare.

Encoded as `scrypt$<n>$<r>$<p>$<salt b64>$<hash b64>` so the cost can be raised later and
old hashes still verify (`needs_rehash` says when to re-hash on the next login).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os

SCRYPT_N = 2**15  # 32 MiB of memory, ~0.1 s per hash on a 2020s server core
SCRYPT_R = 8
SCRYPT_P = 1
_SALT_BYTES = 16
_HASH_BYTES = 32
_MAX_N = 2**20  # refuse stored parameters that would exhaust memory


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _scrypt(password: str, salt: bytes, n: int, r: int, p: int) -> bytes:
    return hashlib.scrypt(
        password.encode("utf-8"), salt=salt, n=n, r=r, p=p, maxmem=2 * 128 * r * n + 1024 * 1024, dklen=_HASH_BYTES
    )


def hash_password(password: str) -> str:
    if not password:
        raise ValueError("a password must not be empty")
    salt = os.urandom(_SALT_BYTES)
    digest = _scrypt(password, salt, SCRYPT_N, SCRYPT_R, SCRYPT_P)
    return f"scrypt${SCRYPT_N}${SCRYPT_R}${SCRYPT_P}${_b64(salt)}${_b64(digest)}"


def _parse(encoded: str) -> tuple[int, int, int, bytes, bytes]:
    scheme, n, r, p, salt, digest = encoded.split("$")
    if scheme != "scrypt":
        raise ValueError(f"unknown password hash scheme {scheme!r}")
    n_i, r_i, p_i = int(n), int(r), int(p)
    if not (2 <= n_i <= _MAX_N and n_i & (n_i - 1) == 0 and 1 <= r_i <= 32 and 1 <= p_i <= 16):
        raise ValueError("password hash parameters out of range")
    return n_i, r_i, p_i, base64.b64decode(salt, validate=True), base64.b64decode(digest, validate=True)


def is_password_hash(encoded: str) -> bool:
    try:
        _parse(encoded)
    except ValueError:
        return False
    return True


def verify_password(password: str, encoded: str) -> bool:
    """True when `password` matches; a malformed hash never matches."""
    try:
        n, r, p, salt, expected = _parse(encoded)
    except ValueError:
        return False
    return hmac.compare_digest(_scrypt(password, salt, n, r, p), expected)


def needs_rehash(encoded: str) -> bool:
    try:
        n, r, p, _salt, _digest = _parse(encoded)
    except ValueError:
        return True
    return (n, r, p) != (SCRYPT_N, SCRYPT_R, SCRYPT_P)


# Verified against when the username is unknown, so a probe cannot tell users apart by timing.
DUMMY_HASH = (
    "scrypt$32768$8$1$c3RvcmVndWFyZC1kdW1teQ==$"
    "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="
)
