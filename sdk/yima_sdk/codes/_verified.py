"""What a credential check produces and keeps: `VerifiedCode`, and the issuer keys and device certificates that
passed their checks, each read once into what the checks of later codes need."""

from __future__ import annotations

import struct
from typing import Final, Literal

import msgspec

from yima_sdk._ed25519 import VerifyKey
from yima_sdk.codes._formats import Colour, DeviceCertificate
from yima_sdk.passes import PassClaims

__all__ = ["VerifiedCode"]

RIDE_REPLAY: Final = struct.Struct(">cI8sH")
"""A ride code's replay key: b"R", issuer, certificate serial, use counter."""


class VerifiedCode(msgspec.Struct, frozen=True, gc=False):
    """What a verified credential tells its reader. Ride-only fields are None for Ankang codes."""

    kind: Literal["ankang_code", "ride_code", "app_pass"]
    issuer: int
    key_id: bytes
    """Key id of the issuer key that signed the code (ride code: that signed the device certificate)."""
    subject_ref: bytes
    """Ankang code: the pseudonymous subject ref. Ride code: the certificate's account ref. App pass: empty
    (a pass names no one; its issuer keeps the holder against its number)."""
    colour: Colour | None
    issued_at: int
    expires_at: int
    replay_key: bytes
    """Identifies this code instance: the same bytes for the same Ankang code, or the same ride
    certificate and counter however often it is shown."""
    certificate_serial: bytes | None = None
    counter: int | None = None
    max_offline_uses: int | None = None
    max_offline_amount_fen: int | None = None
    app_pass: PassClaims | None = None
    """App pass only: what the pass says (issuing app, number, kind, the app's data, expiry)."""


class IssuerKey:
    __slots__ = ("credential_types", "issuer", "key_id", "not_after", "not_before", "public_key")

    def __init__(
        self,
        issuer: int,
        key_id: bytes,
        public_key: VerifyKey,
        credential_types: frozenset[str],
        nb: int,
        na: int,
    ):
        self.issuer = issuer
        self.key_id = key_id
        self.public_key = public_key
        self.credential_types = credential_types
        self.not_before = nb
        self.not_after = na


class CheckedCertificate:
    """A device certificate that passed its checks (issuer key, signature, key window): what its ride codes
    need, read once."""

    __slots__ = (
        "account_ref",
        "device_key",
        "expires_at",
        "issued_at",
        "issuer",
        "key_id",
        "max_amount",
        "max_uses",
        "raw",
        "replay_prefix",
        "serial",
    )

    def __init__(self, cert: DeviceCertificate) -> None:
        self.issuer = cert.issuer
        self.key_id = cert.key_id
        self.account_ref = cert.account_ref
        self.device_key = cert.device_public_key
        self.issued_at = cert.issued_at
        self.expires_at = cert.expires_at
        self.max_uses = cert.max_offline_uses
        self.max_amount = cert.max_offline_amount_fen
        self.raw = cert.raw
        self.serial = cert.serial
        # a ride code's replay key is this, then its counter
        self.replay_prefix = RIDE_REPLAY.pack(b"R", cert.issuer, self.serial, 0)[:-2]
