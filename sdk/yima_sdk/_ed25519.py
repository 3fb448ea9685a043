"""Ed25519 signature verification through libsodium (PyNaCl).

Every credential check in yima (a scan on a terminal, every record of an offline batch on the server, a trust
list) verifies Ed25519 signatures here. Signing stays with `cryptography`. libsodium verifies about twice as fast
as OpenSSL (what `cryptography` calls) on the machines we measured (docs/benchmarks.md), and verification is
most of the cost of a scan.

libsodium is the stricter verifier: besides what OpenSSL checks (the signature's S below the group order, the
equation), it refuses public keys and signature points R of small order and public keys that are not canonical
encodings. Signatures from an honest signer verify under both; `public_key_valid` lets a registration refuse, up
front, a key whose every signature would be refused here.

The call goes to `crypto_sign_open` in PyNaCl's libsodium binding with no output buffers (libsodium allows NULL
for both): PyNaCl's public wrappers allocate and copy the message on each call, which is a measurable share of a
50 µs verification. The binding releases the GIL for the call, so verifying threads run in parallel.

That binding (`nacl._sodium`) is PyNaCl's own, not its public API. So it is only the fast path: where a PyNaCl
release no longer has it, the same libsodium function is called through the public `nacl.bindings` (same
answers, a copy per call slower), and no upper bound on PyNaCl is needed. `sdk/tests/test_sdk_ed25519.py` holds
both paths to the same answers.
"""

from __future__ import annotations

from typing import Any, Final

import nacl.bindings
import nacl.exceptions

# Importing nacl.bindings also runs sodium_init() (once per process), which libsodium asks for before first use.
from nacl.bindings import crypto_core_ed25519_is_valid_point


def public_open(_message: Any, _length: Any, signed: bytes, signed_length: int, raw_key: bytes) -> int:
    """`crypto_sign_open` through PyNaCl's public binding, with the private binding's call shape: 0 when valid."""
    try:
        nacl.bindings.crypto_sign_open(signed[:signed_length], raw_key)
    except (nacl.exceptions.BadSignatureError, nacl.exceptions.ValueError, nacl.exceptions.TypeError):
        return -1
    return 0


_open: Any
_null: Any
try:
    from nacl._sodium import ffi, lib
except ImportError:  # a PyNaCl without its private binding: the public one, same answers
    _open, _null = public_open, None
else:
    _open, _null = lib.crypto_sign_open, ffi.NULL

FAST: Final = _open is not public_open
"""Whether verification takes PyNaCl's private binding (the fast path) in this process."""

__all__ = ["NULL", "PUBLIC_KEY_SIZE", "SIGNATURE_SIZE", "VerifyKey", "public_key_valid", "sodium_open"]

PUBLIC_KEY_SIZE: Final = 32
SIGNATURE_SIZE: Final = 64

sodium_open: Final = _open
"""`sodium_open(NULL, NULL, signature + message, len(signature + message), raw_key) == 0` when valid: the call
`VerifyKey.verifies` makes, for loops that cannot afford a Python call per signature (`Verifier.verify_many`).
The signature must be exactly 64 bytes."""
NULL: Final = _null


class VerifyKey:
    """An Ed25519 public key that verifies signatures (raw 32-byte encoding)."""

    __slots__ = ("raw",)

    def __init__(self, raw: bytes) -> None:
        if type(raw) is not bytes or len(raw) != PUBLIC_KEY_SIZE:
            raise ValueError("an Ed25519 public key is 32 bytes")
        self.raw = raw

    def verifies(self, signature: bytes, message: bytes) -> bool:
        """True when `signature` is this key's valid signature of `message`. Answers, never raises: named apart
        from `cryptography`'s `verify`, which raises, so that neither is mistaken for the other."""
        return (
            len(signature) == SIGNATURE_SIZE
            and sodium_open(NULL, NULL, signature + message, SIGNATURE_SIZE + len(message), self.raw) == 0
        )


def public_key_valid(raw: bytes) -> bool:
    """True for a 32-byte canonical encoding of a point of the main subgroup (not of small order): a key whose
    signatures can verify at all."""
    return len(raw) == PUBLIC_KEY_SIZE and crypto_core_ed25519_is_valid_point(raw)
