"""Terminal documents: what an app publishes for the terminals of its scenes (`ctx.terminals.publish`, e.g. the
bus app's fare table), as the platform signs them and a terminal checks them.

    envelope = sign_document(app_id=..., name="fares", version=2, effective_from=t, content=b'{...}', ...)
    document = TerminalDocument.verify(envelope, root_public_keys)          # on the terminal
    current = in_force(held_documents, now)                                  # the version that applies now

One envelope per published version, signed once at publication by the platform's trust-list root (the keys a
terminal already pins for its trust list). The signature covers `DOCUMENT_CONTEXT` + the document, so it can
never pass as a trust list's or a signed time's, and the other way round. The document names the app that
published it: a terminal applies only its own scene's app's documents (`TerminalDocument.app_id`).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

import msgspec

from yima_sdk.errors import InvalidArgument

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

__all__ = [
    "DOCUMENT_CONTEXT",
    "DocumentError",
    "TerminalDocument",
    "documents_etag",
    "in_force",
    "sign_document",
]

DOCUMENT_CONTEXT = b"yima-terminal-document-v1\x00"
"""What a terminal document's signature covers before the document: keeps it apart from other root signatures."""


class DocumentError(InvalidArgument):
    """A terminal document that is not the platform's (bad signature, unpinned root), malformed, another app's,
    or a held version replaced by other content."""


class _Document(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    app_id: str
    name: str
    version: int
    effective_from: int
    """Unix seconds."""
    issued_at: int
    content: msgspec.Raw


class _Envelope(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    document: str
    signature: str
    root_key_id: str


_decode_envelope = msgspec.json.Decoder(_Envelope).decode
_decode_document = msgspec.json.Decoder(_Document).decode


def sign_document(
    *, app_id: str, name: str, version: int, effective_from: int, content: bytes, issued_at: int,
    root_private_key: Ed25519PrivateKey, root_key_id: str,
) -> bytes:  # fmt: skip
    """Platform side: the envelope of one published version; `content` is its JSON (an object)."""
    document = msgspec.json.encode(
        _Document(
            app_id=app_id, name=name, version=version, effective_from=effective_from, issued_at=issued_at,
            content=msgspec.Raw(content),
        )
    )  # fmt: skip
    return msgspec.json.encode(
        _Envelope(
            document=base64.b64encode(document).decode(),
            signature=base64.b64encode(root_private_key.sign(DOCUMENT_CONTEXT + document)).decode(),
            root_key_id=root_key_id,
        )
    )


class TerminalDocument(msgspec.Struct, frozen=True, kw_only=True):
    """One verified version of a document: whose (`app_id`), which (`name`, `version`), from when
    (`effective_from`, Unix seconds), and its `content` (the JSON the app published, as bytes)."""

    app_id: str
    name: str
    version: int
    effective_from: int
    issued_at: int
    content: bytes
    envelope: bytes

    @classmethod
    def verify(
        cls, envelope: bytes, root_public_keys: Mapping[str, Ed25519PublicKey | bytes]
    ) -> TerminalDocument:
        """Check an envelope against the pinned root keys; raises DocumentError (`terminal document: ...`)."""
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
        from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

        from yima_sdk._ed25519 import VerifyKey

        try:
            wire = _decode_envelope(envelope)
            document = base64.b64decode(wire.document, validate=True)
            signature = base64.b64decode(wire.signature, validate=True)
        except (msgspec.DecodeError, msgspec.ValidationError, ValueError, binascii.Error) as exc:
            raise DocumentError(f"terminal document: malformed: {exc}") from None
        root = root_public_keys.get(wire.root_key_id)
        if root is None:
            raise DocumentError(f"terminal document: root key {wire.root_key_id!r} is not pinned")
        if isinstance(root, Ed25519PublicKey):
            root = root.public_bytes(Encoding.Raw, PublicFormat.Raw)
        if not VerifyKey(root).verifies(signature, DOCUMENT_CONTEXT + document):
            raise DocumentError("terminal document: bad signature")
        try:
            doc = _decode_document(document)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            raise DocumentError(f"terminal document: malformed: {exc}") from None
        return cls(
            app_id=doc.app_id, name=doc.name, version=doc.version, effective_from=doc.effective_from,
            issued_at=doc.issued_at, content=bytes(doc.content), envelope=envelope,
        )  # fmt: skip

    def json(self) -> Any:
        """The content decoded."""
        return msgspec.json.decode(self.content)


def in_force(documents: Iterable[TerminalDocument], at: float) -> TerminalDocument | None:
    """The version in force at `at` (Unix seconds): the latest `effective_from` at or before it (ties: the
    higher version), None before the first."""
    best: TerminalDocument | None = None
    for d in documents:
        if d.effective_from <= at and (
            best is None or (d.effective_from, d.version) > (best.effective_from, best.version)
        ):
            best = d
    return best


def documents_etag(body: bytes) -> str:
    """The ETag of a `GET /v1/terminal/documents` answer: the server sends it, a terminal sends it back."""
    return '"' + hashlib.sha256(body).hexdigest()[:32] + '"'
