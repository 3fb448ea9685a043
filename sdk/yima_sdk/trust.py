"""What a verifier trusts: the root-signed trust list of issuer keys, and per-issuer revocation lists.

Both are verifiable and usable offline. The trust list travels as a JSON envelope holding the exact
signed document bytes (base64url) and a detached Ed25519 signature by a root key that terminals pin;
no canonicalisation is needed because the signature covers the bytes as sent. Revocations travel as
versioned deltas that `RevocationSet` refuses to apply out of order; they live in `yima_sdk._revocations`
and are re-exported here.
"""

from __future__ import annotations

import binascii
import hashlib
from collections.abc import Iterable, Mapping
from typing import Final

import msgspec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from yima_sdk._ed25519 import VerifyKey
from yima_sdk._revocations import (
    KNOWN_REVOCATION_KINDS,
    RevocationDelta,
    RevocationError,
    RevocationKind,
    RevocationSet,
    decode_revocation_delta,
    encode_revocation_delta,
    pass_ref,
)
from yima_sdk._wire import Inbound, b64decode, b64encode, encoder
from yima_sdk.codes._formats import ALG_ED25519

__all__ = [
    "CREDENTIAL_TYPES",
    "KNOWN_REVOCATION_KINDS",
    "RevocationDelta",
    "RevocationError",
    "RevocationKind",
    "RevocationSet",
    "TrustEntry",
    "TrustList",
    "TrustListError",
    "build_trust_list",
    "decode_revocation_delta",
    "encode_revocation_delta",
    "pass_ref",
    "trust_list_etag",
]

CREDENTIAL_TYPES: Final = frozenset({"ankang_code", "device_certificate", "app_pass"})
"""What an issuer key may sign. Ride codes are signed by device keys, vouched for by a device certificate;
`app_pass`: mini-app passes (yima_sdk.passes), so that terminals verify tickets offline."""


class TrustListError(Exception):
    """A trust list was refused: `trust_list.malformed`, `.unknown_root`, `.bad_signature` or `.rollback`."""

    def __init__(self, code: str, detail: str = "") -> None:
        super().__init__(f"{code}: {detail}" if detail else code)
        self.code = code


class _EntryWire(Inbound):
    issuer: int
    key_id: str
    """8 hex digits (4 bytes), as printed in credentials docs and admin tools."""
    alg: int
    public_key: str
    """base64url (no padding) of the raw public key."""
    credential_types: list[str]
    not_before: int
    not_after: int


class _DocumentWire(Inbound):
    version: int
    issued_at: int
    entries: list[_EntryWire]


class _EnvelopeWire(Inbound):
    document: str
    signature: str
    root_key_id: str


_envelope_decoder = msgspec.json.Decoder(_EnvelopeWire)
_document_decoder = msgspec.json.Decoder(_DocumentWire)


class TrustEntry(msgspec.Struct, frozen=True):
    """One accepted issuer key: who (division code + key id), how (algorithm), for what, and when."""

    issuer: int
    key_id: bytes
    alg: int
    public_key: bytes
    credential_types: frozenset[str]
    not_before: int
    not_after: int


def trust_list_etag(envelope: bytes) -> str:
    """The strong ETag of a trust list envelope: a quoted SHA-256 prefix of its exact bytes."""
    return '"' + hashlib.sha256(envelope).hexdigest()[:32] + '"'


def build_trust_list(
    entries: Iterable[TrustEntry],
    version: int,
    root_private_key: Ed25519PrivateKey,
    root_key_id: str,
    issued_at: int,
) -> bytes:
    """Server side: sign a trust list document with the root key and return the envelope bytes."""
    document = encoder.encode(
        _DocumentWire(
            version=version,
            issued_at=issued_at,
            entries=[
                _EntryWire(
                    issuer=e.issuer,
                    key_id=e.key_id.hex(),
                    alg=e.alg,
                    public_key=b64encode(e.public_key),
                    credential_types=sorted(e.credential_types),
                    not_before=e.not_before,
                    not_after=e.not_after,
                )
                for e in entries
            ],
        )
    )
    # Validate what we are about to publish with the same rules terminals apply.
    _parse_document(document)
    return encoder.encode(
        _EnvelopeWire(
            document=b64encode(document),
            signature=b64encode(root_private_key.sign(document)),
            root_key_id=root_key_id,
        )
    )


def _malformed(detail: str) -> TrustListError:
    return TrustListError("trust_list.malformed", detail)


def _parse_entry(wire: _EntryWire) -> TrustEntry:
    if not 100000 <= wire.issuer <= 999999:
        raise _malformed("issuer is not a 6-digit division code")
    try:
        key_id = bytes.fromhex(wire.key_id)
        public_key = b64decode(wire.public_key)
    except (ValueError, binascii.Error):
        raise _malformed("bad key_id or public_key encoding") from None
    if len(key_id) != 4:
        raise _malformed("key_id must be 4 bytes")
    if wire.alg == ALG_ED25519 and len(public_key) != 32:
        raise _malformed("Ed25519 public key must be 32 bytes")
    if wire.not_after < wire.not_before:
        raise _malformed("not_after before not_before")
    # Unknown credential types and algorithms are kept but never match: a newer list stays readable.
    return TrustEntry(
        issuer=wire.issuer,
        key_id=key_id,
        alg=wire.alg,
        public_key=public_key,
        credential_types=frozenset(wire.credential_types),
        not_before=wire.not_before,
        not_after=wire.not_after,
    )


def _parse_document(document: bytes) -> tuple[_DocumentWire, tuple[TrustEntry, ...]]:
    try:
        wire = _document_decoder.decode(document)
    except msgspec.DecodeError as exc:
        raise _malformed(str(exc)) from None
    entries = tuple(_parse_entry(e) for e in wire.entries)
    if len({(e.issuer, e.key_id) for e in entries}) != len(entries):
        raise _malformed("duplicate (issuer, key_id)")
    if wire.version < 1:
        raise _malformed("version must be positive")
    return wire, entries


class TrustList(msgspec.Struct, frozen=True):
    """A verified trust list. Build it only through `TrustList.verify`."""

    version: int
    issued_at: int
    entries: tuple[TrustEntry, ...]
    root_key_id: str
    envelope: bytes
    """The exact envelope bytes, to store and to hand to the next `verify` after a restart."""
    document: bytes
    etag: str

    def entry(self, issuer: int, key_id: bytes) -> TrustEntry | None:
        """The entry for one issuer key, or None."""
        for e in self.entries:
            if e.issuer == issuer and e.key_id == key_id:
                return e
        return None

    @classmethod
    def verify(
        cls,
        envelope: bytes,
        root_public_keys: Mapping[str, Ed25519PublicKey | bytes],
        held: TrustList | None = None,
    ) -> TrustList:
        """Check a trust list envelope against pinned root keys; refuse a version older than `held`.

        A list with the same version as `held` is accepted only if its document is byte-identical
        (a re-fetch); a different document under the same version is treated as rollback, since the
        root never signs two documents with one version.
        """
        try:
            wire = _envelope_decoder.decode(envelope)
            document = b64decode(wire.document)
            signature = b64decode(wire.signature)
        except (msgspec.DecodeError, ValueError, binascii.Error) as exc:
            raise _malformed(str(exc)) from None
        root = root_public_keys.get(wire.root_key_id)
        if root is None:
            raise TrustListError("trust_list.unknown_root", f"root key {wire.root_key_id!r} is not pinned")
        if isinstance(root, Ed25519PublicKey):
            root = root.public_bytes(Encoding.Raw, PublicFormat.Raw)
        if not VerifyKey(root).verifies(signature, document):  # ValueError: a pinned root is not a key
            raise TrustListError("trust_list.bad_signature")
        doc, entries = _parse_document(document)
        if held is not None and (
            doc.version < held.version or (doc.version == held.version and document != held.document)
        ):
            raise TrustListError(
                "trust_list.rollback", f"version {doc.version} does not supersede held {held.version}"
            )
        return cls(
            version=doc.version,
            issued_at=doc.issued_at,
            entries=entries,
            root_key_id=wire.root_key_id,
            envelope=envelope,
            document=document,
            etag=trust_list_etag(envelope),
        )
