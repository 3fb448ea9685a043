"""What a verifier trusts: the root-signed trust list of issuer keys, and per-issuer revocation lists.

Both are verifiable and usable offline. The trust list travels as a JSON envelope holding the exact
signed document bytes (base64url) and a detached Ed25519 signature by a root key that terminals pin;
no canonicalisation is needed because the signature covers the bytes as sent. Revocations travel as
versioned deltas that `RevocationSet` refuses to apply out of order.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from collections import Counter
from collections.abc import Iterable, Mapping
from typing import Annotated, Final, Literal

import msgspec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from yima_sdk._ed25519 import VerifyKey
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

RevocationKind = Literal["subject", "device_certificate", "app_pass"]
"""The kinds this SDK knows. `app_pass`: a revoked mini-app pass (a cancelled ticket), by its pass number (8 bytes,
big-endian): no one's personal data, only the number the pass itself carries.

The list format may grow new kinds. An entry of a kind this SDK does not know is kept aside, never applied and
never refused (`RevocationSet.unknown_kinds` counts them): the known entries of the same delta still count, so a
newer server's list never stops a terminal from refusing what it can recognise. Kept aside, such entries are
stored with the rest, so a later SDK that knows the kind reads them from the same file."""

KNOWN_REVOCATION_KINDS: Final = frozenset({"subject", "device_certificate", "app_pass"})
"""The `RevocationKind`s, as a set."""

_KIND_NAME = re.compile(r"^[a-z][a-z0-9_]{0,39}$")
"""What a kind's name may be, known or not (it is logged: a name, never a reference)."""


class TrustListError(Exception):
    """A trust list was refused: `trust_list.malformed`, `.unknown_root`, `.bad_signature` or `.rollback`."""

    def __init__(self, code: str, detail: str = "") -> None:
        super().__init__(f"{code}: {detail}" if detail else code)
        self.code = code


class RevocationError(Exception):
    """A revocation delta was refused: `revocation.malformed` or `revocation.gap`."""

    def __init__(self, code: str, detail: str = "") -> None:
        super().__init__(f"{code}: {detail}" if detail else code)
        self.code = code


def _b64encode(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _b64decode(text: str) -> bytes:
    # Strict: only the URL-safe alphabet, padding optional on the wire.
    return base64.b64decode(text + "=" * (-len(text) % 4), altchars=b"-_", validate=True)


class _Inbound(msgspec.Struct, forbid_unknown_fields=True):
    """Base of wire types we read: an unknown field means a newer format we must not half-understand."""


class _EntryWire(_Inbound):
    issuer: int
    key_id: str
    """8 hex digits (4 bytes), as printed in credentials docs and admin tools."""
    alg: int
    public_key: str
    """base64url (no padding) of the raw public key."""
    credential_types: list[str]
    not_before: int
    not_after: int


class _DocumentWire(_Inbound):
    version: int
    issued_at: int
    entries: list[_EntryWire]


class _EnvelopeWire(_Inbound):
    document: str
    signature: str
    root_key_id: str


_envelope_decoder = msgspec.json.Decoder(_EnvelopeWire)
_document_decoder = msgspec.json.Decoder(_DocumentWire)
_encoder = msgspec.json.Encoder()


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
    document = _encoder.encode(
        _DocumentWire(
            version=version,
            issued_at=issued_at,
            entries=[
                _EntryWire(
                    issuer=e.issuer,
                    key_id=e.key_id.hex(),
                    alg=e.alg,
                    public_key=_b64encode(e.public_key),
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
    return _encoder.encode(
        _EnvelopeWire(
            document=_b64encode(document),
            signature=_b64encode(root_private_key.sign(document)),
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
        public_key = _b64decode(wire.public_key)
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
            document = _b64decode(wire.document)
            signature = _b64decode(wire.signature)
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


class RevocationEntryWire(_Inbound):
    version: int
    kind: Annotated[
        str,
        msgspec.Meta(
            pattern=_KIND_NAME.pattern,
            description="subject, device_certificate or app_pass; the list may grow new kinds, which a terminal"
            " that does not know them ignores (docs/scan.md, Revocation)",
        ),
    ]
    """A `RevocationKind`, or a kind of a newer list (kept aside, see `RevocationKind`)."""
    ref: str
    """base64url (no padding), never empty: a 16-byte subject/account ref, an 8-byte device certificate serial or
    an 8-byte app pass number (big-endian)."""


class RevocationDelta(_Inbound):
    """Body of `GET /v1/revocations?issuer=I&since=N`: the revocations of one issuer after version N.

    `since` echoes the request; `since == 0` means the complete list, which replaces what is held.
    """

    issuer: int
    since: int
    version: int
    entries: list[RevocationEntryWire]


_delta_decoder = msgspec.json.Decoder(RevocationDelta)

_REF_SIZE: Final[dict[str, int]] = {"subject": 16, "device_certificate": 8, "app_pass": 8}


def pass_ref(number: int) -> bytes:
    """The revocation ref of app pass number `number` (the `p` of its claims)."""
    return number.to_bytes(8, "big")


class RevocationSet:
    """Per-issuer revoked subject refs, device certificate serials and app pass numbers, each issuer's list with
    a version number; and, kept aside, the entries of kinds this SDK does not know."""

    __slots__ = ("_others", "_passes", "_serials", "_subjects", "_versions")

    def __init__(self) -> None:
        self._versions: dict[int, int] = {}
        self._subjects: dict[int, set[bytes]] = {}
        self._serials: dict[int, set[bytes]] = {}
        self._passes: dict[int, set[bytes]] = {}
        self._others: dict[int, set[tuple[str, bytes]]] = {}

    def version(self, issuer: int) -> int:
        """The version held for `issuer` (0 when nothing is held): the `since` of the next request."""
        return self._versions.get(issuer, 0)

    def issuers(self) -> list[int]:
        return sorted(self._versions)

    def subject_revoked(self, issuer: int, ref: bytes) -> bool:
        refs = self._subjects.get(issuer)
        return refs is not None and ref in refs

    def certificate_revoked(self, issuer: int, serial: bytes) -> bool:
        serials = self._serials.get(issuer)
        return serials is not None and serial in serials

    def pass_revoked(self, issuer: int, number: int) -> bool:
        """Whether app pass `number`, signed with a key of `issuer`, is revoked (e.g. its ticket cancelled)."""
        passes = self._passes.get(issuer)
        return passes is not None and pass_ref(number) in passes

    def unknown_kinds(self, issuer: int | None = None) -> dict[str, int]:
        """How many entries of each kind this SDK does not know are held (of `issuer`, or of all issuers): such a
        list came from a newer server, and this terminal would refuse more with a newer SDK."""
        held = self._others.values() if issuer is None else [self._others.get(issuer, set())]
        return dict(Counter(kind for entries in held for kind, _ in entries))

    def apply_delta(
        self,
        issuer: int,
        from_version: int,
        to_version: int,
        added: Iterable[tuple[str, bytes]],
    ) -> None:
        """Add the revocations published between `from_version` and `to_version`.

        Refuses a gap (`from_version` is not the version held) with `revocation.gap`; `from_version == 0`
        is a complete list and replaces what is held. An entry of a kind this SDK does not know is kept aside
        (see `RevocationKind`). Nothing changes when a check fails.
        """
        if to_version < from_version or from_version < 0:
            raise RevocationError("revocation.malformed", "to_version before from_version")
        if from_version != 0 and from_version != self.version(issuer):
            raise RevocationError(
                "revocation.gap", f"delta starts at {from_version}, held {self.version(issuer)}"
            )
        subjects: set[bytes] = set() if from_version == 0 else set(self._subjects.get(issuer, ()))
        serials: set[bytes] = set() if from_version == 0 else set(self._serials.get(issuer, ()))
        passes: set[bytes] = set() if from_version == 0 else set(self._passes.get(issuer, ()))
        others: set[tuple[str, bytes]] = set() if from_version == 0 else set(self._others.get(issuer, ()))
        by_kind: dict[str, set[bytes]] = {
            "subject": subjects,
            "device_certificate": serials,
            "app_pass": passes,
        }
        for kind, ref in added:
            known = by_kind.get(kind)
            if known is None:
                if not _KIND_NAME.fullmatch(kind) or not ref:
                    raise RevocationError("revocation.malformed", "bad kind name or empty reference")
                others.add((kind, ref))
            elif len(ref) != _REF_SIZE[kind]:
                raise RevocationError("revocation.malformed", f"bad {kind} reference")
            else:
                known.add(ref)
        self._subjects[issuer] = subjects
        self._serials[issuer] = serials
        self._passes[issuer] = passes
        self._others[issuer] = others
        self._versions[issuer] = to_version

    def apply_response(self, body: bytes) -> RevocationDelta:
        """Decode a `GET /v1/revocations` body and apply it; returns the decoded delta."""
        delta, added = decode_revocation_delta(body)
        self.apply_delta(delta.issuer, delta.since, delta.version, added)
        return delta

    def entries(self, issuer: int) -> list[tuple[str, bytes]]:
        """Everything held for `issuer`, the entries of unknown kinds included, e.g. to persist it."""
        out: list[tuple[str, bytes]] = [("subject", r) for r in self._subjects.get(issuer, ())]
        out += [("device_certificate", r) for r in self._serials.get(issuer, ())]
        out += [("app_pass", r) for r in self._passes.get(issuer, ())]
        out += sorted(self._others.get(issuer, ()))
        return out


def decode_revocation_delta(body: bytes) -> tuple[RevocationDelta, list[tuple[str, bytes]]]:
    """Decode and check a `GET /v1/revocations` body; the refs come back as bytes. Entries of kinds this SDK does
    not know come back too (`apply_delta` keeps them aside): only their form is checked."""
    try:
        delta = _delta_decoder.decode(body)
        added: list[tuple[str, bytes]] = []
        for e in delta.entries:
            if not delta.since < e.version <= delta.version:
                raise RevocationError("revocation.malformed", "entry version outside the delta")
            added.append((e.kind, _b64decode(e.ref)))
    except (msgspec.DecodeError, ValueError, binascii.Error) as exc:
        raise RevocationError("revocation.malformed", str(exc)) from None
    return delta, added


def encode_revocation_delta(
    issuer: int, since: int, version: int, entries: Iterable[tuple[int, RevocationKind, bytes]]
) -> bytes:
    """Server side: the `GET /v1/revocations` body for (entry version, kind, ref) triples after `since`."""
    return _encoder.encode(
        RevocationDelta(
            issuer=issuer,
            since=since,
            version=version,
            entries=[RevocationEntryWire(version=v, kind=k, ref=_b64encode(r)) for v, k, r in entries],
        )
    )
