"""Password hashing: argon2id (legacy scrypt verified and upgraded), random salt, no plain text anywhere."""

from __future__ import annotations

import base64
import hashlib
import inspect

from central.auth import passwords
from central.auth.passwords import DUMMY_HASH, hash_password, is_password_hash, needs_rehash, verify_password


def test_hash_verifies_only_the_right_password() -> None:
    encoded = hash_password("correct horse battery staple")
    assert verify_password("correct horse battery staple", encoded)
    assert not verify_password("correct horse battery stapler", encoded)
    assert not verify_password("", encoded)


def test_hash_is_salted_and_contains_no_plain_text() -> None:
    first, second = hash_password("s3cret-pass"), hash_password("s3cret-pass")
    assert first != second  # a random salt each time
    assert "s3cret-pass" not in first
    _, scheme, version, params, salt, _digest = first.split("$")
    assert (scheme, version) == ("argon2id", "v=19")
    assert params == "m=65536,t=3,p=4"
    assert salt != second.split("$")[4]


def test_malformed_or_foreign_hashes_never_match() -> None:
    for bad in ["", "plain", "bcrypt$2b$12$abc", "scrypt$3$8$1$AAAA$AAAA", "scrypt$32768$8$1$!!$AAAA",
                "scrypt$4194304$8$1$AAAA$AAAA", "$argon2id$v=19$m=65536,t=3,p=4$!!$AAAA", "$argon2id$garbage"]:
        assert not verify_password("anything", bad)
        assert not is_password_hash(bad)


def test_dummy_hash_is_well_formed_but_matches_nothing() -> None:
    assert is_password_hash(DUMMY_HASH)
    assert not verify_password("", DUMMY_HASH) and not verify_password("password", DUMMY_HASH)


def _legacy_scrypt(password: str) -> str:
    """A hash as earlier releases wrote it."""
    salt = b"0123456789abcdef"
    digest = hashlib.scrypt(password.encode(), salt=salt, n=2**14, r=8, p=1, maxmem=64 * 1024 * 1024, dklen=32)
    return f"scrypt$16384$8$1${base64.b64encode(salt).decode()}${base64.b64encode(digest).decode()}"


def test_legacy_scrypt_hashes_still_verify_and_ask_for_a_rehash() -> None:
    legacy = _legacy_scrypt("old-but-good-pass")
    assert is_password_hash(legacy)
    assert verify_password("old-but-good-pass", legacy)
    assert not verify_password("old-but-good-pasS", legacy)
    assert needs_rehash(legacy)


def test_needs_rehash_when_parameters_change() -> None:
    assert not needs_rehash(hash_password("x-password"))
    weaker = "$argon2id$v=19$m=8192,t=1,p=1$" + hash_password("y").split("$", 5)[4] + "$" + "A" * 43
    assert needs_rehash(weaker)
    assert needs_rehash("garbage")


def test_comparison_is_constant_time() -> None:
    assert "hmac.compare_digest" in inspect.getsource(passwords._verify_scrypt)
    assert "_HASHER.verify" in inspect.getsource(passwords.verify_password)
