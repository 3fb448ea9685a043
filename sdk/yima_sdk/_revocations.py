"""Revocations as a verifier holds them: per-issuer versioned sets, and the `GET /v1/revocations` wire format.

Revocations travel as versioned deltas that `RevocationSet` refuses to apply out of order.
"""

from __future__ import annotations

import binascii
import re
from collections import Counter
from collections.abc import Iterable
from typing import Annotated, Final, Literal

import msgspec

from yima_sdk._wire import Inbound, b64decode, b64encode, encoder

__all__ = [
    "KNOWN_REVOCATION_KINDS",
    "RevocationDelta",
    "RevocationError",
    "RevocationKind",
    "RevocationSet",
    "decode_revocation_delta",
    "encode_revocation_delta",
    "pass_ref",
]

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


class RevocationError(Exception):
    """A revocation delta was refused: `revocation.malformed` or `revocation.gap`."""

    def __init__(self, code: str, detail: str = "") -> None:
        super().__init__(f"{code}: {detail}" if detail else code)
        self.code = code


class RevocationEntryWire(Inbound):
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


class RevocationDelta(Inbound):
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
            added.append((e.kind, b64decode(e.ref)))
    except (msgspec.DecodeError, ValueError, binascii.Error) as exc:
        raise RevocationError("revocation.malformed", str(exc)) from None
    return delta, added


def encode_revocation_delta(
    issuer: int, since: int, version: int, entries: Iterable[tuple[int, RevocationKind, bytes]]
) -> bytes:
    """Server side: the `GET /v1/revocations` body for (entry version, kind, ref) triples after `since`."""
    return encoder.encode(
        RevocationDelta(
            issuer=issuer,
            since=since,
            version=version,
            entries=[RevocationEntryWire(version=v, kind=k, ref=b64encode(r)) for v, k, r in entries],
        )
    )
