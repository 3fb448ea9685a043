"""Signature verification through libsodium: agrees with OpenSSL on honest signatures, stricter on weak keys."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import threading

import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from hypothesis import given
from hypothesis import strategies as st
from sdk_world import IDENTITY_POINT, NON_CANONICAL_POINT
from yima_sdk._ed25519 import FAST, NULL, VerifyKey, public_key_valid, public_open, sodium_open

_KEY = Ed25519PrivateKey.generate()
_RAW = _KEY.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
# The order of the Ed25519 group's main subgroup.
_L = 2**252 + 27742317777372353535851937790883648493


def _openssl_accepts(raw: bytes, signature: bytes, message: bytes) -> bool:
    try:
        Ed25519PublicKey.from_public_bytes(raw).verify(signature, message)
    except InvalidSignature:
        return False
    return True


@given(st.binary(max_size=300), st.integers(min_value=0, max_value=10_000))
def test_honest_signatures_verify_and_any_flipped_bit_is_refused_as_openssl_does(
    message: bytes, bit: int
) -> None:
    signature = _KEY.sign(message)
    key = VerifyKey(_RAW)
    assert key.verifies(signature, message)
    blob = bytearray(signature + message)
    blob[(bit // 8) % len(blob)] ^= 1 << (bit % 8)
    bad_signature, bad_message = bytes(blob[:64]), bytes(blob[64:])
    assert not key.verifies(bad_signature, bad_message)
    assert not _openssl_accepts(_RAW, bad_signature, bad_message)


def test_another_keys_signature_and_wrong_lengths_are_refused() -> None:
    message = b"YR ride code"
    other = Ed25519PrivateKey.generate().sign(message)
    key = VerifyKey(_RAW)
    assert not key.verifies(other, message)
    assert not key.verifies(_KEY.sign(message)[:63], message)
    assert not key.verifies(_KEY.sign(message) + b"\0", message)
    assert not key.verifies(b"", message)
    with pytest.raises(ValueError):
        VerifyKey(_RAW[:31])


def test_a_signature_with_s_not_reduced_is_refused_by_both() -> None:
    message = b"malleated"
    signature = _KEY.sign(message)
    s = int.from_bytes(signature[32:], "little") + _L
    malleated = signature[:32] + s.to_bytes(32, "little")
    assert not VerifyKey(_RAW).verifies(malleated, message)
    assert not _openssl_accepts(_RAW, malleated, message)


def test_the_identity_key_forges_nothing_here_though_openssl_accepts_its_universal_forgery() -> None:
    # R = identity, S = 0 satisfies the cofactorless equation for every message when A is the identity.
    forged = IDENTITY_POINT + bytes(32)
    assert _openssl_accepts(IDENTITY_POINT, forged, b"charge 10,000 yuan")
    assert not VerifyKey(IDENTITY_POINT).verifies(forged, b"charge 10,000 yuan")
    assert not public_key_valid(IDENTITY_POINT)


def test_public_key_valid_accepts_real_keys_only() -> None:
    assert public_key_valid(_RAW)
    assert not public_key_valid(_RAW[:31])
    assert not public_key_valid(bytes(32))  # not a point encoding of the main subgroup
    assert not public_key_valid(NON_CANONICAL_POINT)


def test_verification_from_several_threads_gives_each_its_own_answer() -> None:
    messages = [f"scan {i}".encode() for i in range(400)]
    signatures = [_KEY.sign(m) if i % 3 else bytes(64) for i, m in enumerate(messages)]
    key = VerifyKey(_RAW)
    expected = [i % 3 != 0 for i in range(len(messages))]
    results: list[list[bool]] = []

    def run() -> None:
        results.append([key.verifies(s, m) for s, m in zip(signatures, messages, strict=True)])

    threads = [threading.Thread(target=run) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == [expected] * 4


def _cases() -> list[tuple[bytes, bytes]]:
    """(signed message, key): honest, tampered, another key's, S not reduced, the identity key's forgery, short."""
    message = b"YR ride code"
    signature = _KEY.sign(message)
    tampered = bytearray(signature + message)
    tampered[70] ^= 4
    s = int.from_bytes(signature[32:], "little") + _L
    other = Ed25519PrivateKey.generate().public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    return [
        (signature + message, _RAW),
        (bytes(tampered), _RAW),
        (signature + message, other),
        (signature[:32] + s.to_bytes(32, "little") + message, _RAW),
        (IDENTITY_POINT + bytes(32) + b"charge", IDENTITY_POINT),
        (signature[:40], _RAW),
    ]


def test_the_public_binding_answers_as_the_private_one() -> None:
    assert FAST, "this PyNaCl has its private binding: the fast path is the one in use"
    answers = [sodium_open(NULL, NULL, signed, len(signed), key) == 0 for signed, key in _cases()]
    assert answers == [True, False, False, False, False, False]
    assert [public_open(None, None, signed, len(signed), key) == 0 for signed, key in _cases()] == answers


def test_verification_works_where_pynacl_has_no_private_binding() -> None:
    signature = _KEY.sign(b"scan")
    script = textwrap.dedent(
        f"""
        import sys
        import nacl.bindings  # the public binding, loaded first: it is built on the private module
        sys.modules["nacl._sodium"] = None  # whose name is gone, as in a PyNaCl release without it
        from yima_sdk._ed25519 import FAST, VerifyKey
        key = VerifyKey({_RAW!r})
        print(FAST, key.verifies({signature!r}, b"scan"), key.verifies({signature!r}, b"scam"))
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True
    )
    assert done.stdout.split() == ["False", "True", "False"]
