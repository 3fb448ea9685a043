"""App passes (tickets, door plates): the `YP1.` format the platform and the simulator both sign.

    YP1.<base64url JSON claims>.<base64url Ed25519 signature over "YP1.<base64url JSON claims>">

Claims: `p` pass number, `a` app id, `k` kind, `d` the app's data, `exp` Unix seconds, `kid` the signing key's
id (8 hex digits: the platform's keys of purpose `miniapp-pass`, on the trust list as `app_pass` keys so that
terminals verify passes offline; or the simulator's dev key). No personal data travels in a pass: the holder is
kept by the issuer against the pass number (`s`, the holder's app-scoped id, is always null in passes issued
now; passes of older versions carried it, and the field stays so that they still decode).
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

import msgspec
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from yima_sdk._credential_errors import CredentialError

__all__ = ["PASS_PREFIX", "PassClaims", "open_pass", "seal_pass", "verify_pass_signature"]

PASS_PREFIX = "YP1."  # noqa: S105  (a payload prefix, not a secret)
MAX_PASS_PAYLOAD = 4096


class PassClaims(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """What a pass says; the field names are short because they travel in a QR code."""

    p: int
    a: str
    k: str
    s: str | None
    """Always None in new passes (see the module docstring)."""
    d: dict[str, Any]
    exp: int
    kid: str


_decode_claims = msgspec.json.Decoder(PassClaims)


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def seal_pass(claims: PassClaims, key: Ed25519PrivateKey) -> str:
    """The QR text of a pass signed with `key` (whose id is `claims.kid`)."""
    signed = PASS_PREFIX + _b64(msgspec.json.encode(claims))
    return signed + "." + _b64(key.sign(signed.encode()))


def open_pass(payload: str) -> tuple[PassClaims, bytes, bytes]:
    """The claims, the signed bytes and the signature of a pass, unverified: look the key up by `kid`, then
    `verify_pass_signature`. CredentialError(`credential.malformed`) for anything that is not a pass."""
    if not payload.startswith(PASS_PREFIX) or len(payload) > MAX_PASS_PAYLOAD:
        raise CredentialError("credential.malformed", "not a YP1 pass")
    signed, _, signature = payload.rpartition(".")
    try:
        claims = _decode_claims.decode(_unb64(signed[len(PASS_PREFIX) :]))
        raw_signature = _unb64(signature)
    except (binascii.Error, ValueError, msgspec.DecodeError):
        raise CredentialError("credential.malformed", "the pass does not decode") from None
    return claims, signed.encode(), raw_signature


def verify_pass_signature(key: Ed25519PublicKey, signed: bytes, signature: bytes) -> None:
    """CredentialError(`credential.bad_signature`) unless `signature` is `key`'s over `signed`."""
    try:
        key.verify(signature, signed)
    except InvalidSignature:
        raise CredentialError("credential.bad_signature") from None
