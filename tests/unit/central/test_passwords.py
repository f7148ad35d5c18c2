"""Password hashing: scrypt, random salt, constant-time compare, no plain text anywhere."""

from __future__ import annotations

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
    scheme, n, r, p, salt, digest = first.split("$")
    assert (scheme, int(n), int(r), int(p)) == ("scrypt", passwords.SCRYPT_N, passwords.SCRYPT_R, passwords.SCRYPT_P)
    assert salt != second.split("$")[4]


def test_malformed_or_foreign_hashes_never_match() -> None:
    for bad in ["", "plain", "bcrypt$2b$12$abc", "scrypt$3$8$1$AAAA$AAAA", "scrypt$32768$8$1$!!$AAAA",
                "scrypt$4194304$8$1$AAAA$AAAA"]:
        assert not verify_password("anything", bad)
        assert not is_password_hash(bad)


def test_dummy_hash_is_well_formed_but_matches_nothing() -> None:
    assert is_password_hash(DUMMY_HASH)
    assert not verify_password("", DUMMY_HASH) and not verify_password("password", DUMMY_HASH)


def test_needs_rehash_when_parameters_change() -> None:
    assert not needs_rehash(hash_password("x-password"))
    assert needs_rehash("scrypt$16384$8$1$c2FsdA==$ZGlnZXN0")
    assert needs_rehash("garbage")


def test_comparison_is_constant_time() -> None:
    assert "hmac.compare_digest" in inspect.getsource(passwords.verify_password)
