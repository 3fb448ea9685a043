"""Shared credential material for the SDK tests: a root key, issuer keys of two counties, a signed trust list, a
fixed clock. Not in conftest.py: test modules import it by name, and several test folders have a conftest."""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from yima_sdk.holder import Holder
from yima_sdk.trust import TrustEntry, TrustList, build_trust_list

GUANGDE = 341822
LANGXI = 341821
NOW = 1_767_225_600  # 2026-01-01T00:00:00Z
IDENTITY_POINT = bytes([1]) + bytes(31)
"""The identity point's encoding: 32 bytes that decode as a public key of small order. OpenSSL accepts R = identity,
S = 0 as a signature of any message under it; libsodium and every key check in yima refuse it."""
NON_CANONICAL_POINT = (2**255 - 19).to_bytes(32, "little")
"""y = p, a non-canonical encoding of y = 0: refused as a public key."""


def raw_public(key: Ed25519PrivateKey) -> bytes:
    return key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)


@dataclass
class World:
    root: Ed25519PrivateKey = field(default_factory=Ed25519PrivateKey.generate)
    guangde: Ed25519PrivateKey = field(default_factory=Ed25519PrivateKey.generate)
    langxi: Ed25519PrivateKey = field(default_factory=Ed25519PrivateKey.generate)
    guangde_key_id: bytes = b"\x00\x00\x00\x01"
    langxi_key_id: bytes = b"\x00\x00\x00\x07"
    version: int = 1

    def entries(self) -> list[TrustEntry]:
        return [
            TrustEntry(
                issuer=GUANGDE,
                key_id=self.guangde_key_id,
                alg=1,
                public_key=raw_public(self.guangde),
                credential_types=frozenset({"ankang_code", "device_certificate"}),
                not_before=NOW - 86400 * 365,
                not_after=NOW + 86400 * 365,
            ),
            # Langxi's key is trusted for Ankang codes only.
            TrustEntry(
                issuer=LANGXI,
                key_id=self.langxi_key_id,
                alg=1,
                public_key=raw_public(self.langxi),
                credential_types=frozenset({"ankang_code"}),
                not_before=NOW - 86400,
                not_after=NOW + 86400,
            ),
        ]

    def envelope(self, version: int | None = None, entries: list[TrustEntry] | None = None) -> bytes:
        return build_trust_list(
            self.entries() if entries is None else entries,
            self.version if version is None else version,
            self.root,
            "root-2026",
            NOW - 60,
        )

    @property
    def roots(self) -> dict[str, bytes]:
        return {"root-2026": raw_public(self.root)}

    def trust_list(self) -> TrustList:
        return TrustList.verify(self.envelope(), self.roots)

    def holder(self, *, max_uses: int = 100, max_amount_fen: int = 5000, lifetime_h: int = 720) -> Holder:
        from yima_sdk.codes import issue_device_certificate

        holder = Holder.generate()
        holder.install_certificate(
            issue_device_certificate(
                self.guangde,
                self.guangde_key_id,
                GUANGDE,
                os.urandom(16),
                holder.device_public_key,
                NOW - 3600,
                lifetime_h,
                max_uses,
                max_amount_fen,
            )
        )
        return holder
