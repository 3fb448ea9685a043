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
"""

from __future__ import annotations

from typing import Final

from nacl._sodium import ffi, lib

# Importing nacl.bindings also runs sodium_init() (once per process), which libsodium asks for before first use.
from nacl.bindings import crypto_core_ed25519_is_valid_point

__all__ = ["NULL", "PUBLIC_KEY_SIZE", "SIGNATURE_SIZE", "VerifyKey", "public_key_valid", "sodium_open"]

PUBLIC_KEY_SIZE: Final = 32
SIGNATURE_SIZE: Final = 64

sodium_open: Final = lib.crypto_sign_open
"""`sodium_open(NULL, NULL, signature + message, len(signature + message), raw_key) == 0` when valid: the call
`VerifyKey.verifies` makes, for loops that cannot afford a Python call per signature (`Verifier.verify_many`).
The signature must be exactly 64 bytes."""
NULL: Final = ffi.NULL


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
