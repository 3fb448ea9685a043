"""Terminal lists: small entries an app holds for the terminals of one staff unit (`ctx.terminals.hold`), the
wire of their sync (`GET /v1/terminal/lists`) and the holder tags that bind an entry to a resident.

A terminal never learns who holds an entry. An entry bound to a resident carries *holder tags* instead: one per
refresh period of the Ankang code (the code's `issued_at // period_s`, its "bucket"), each the first 8 bytes of
HMAC-SHA256(salt, subject ref of the resident's code of that bucket). Only the issuing server can compute the
subject refs (an AES block under its own key), so only it computes tags; a terminal computes the tag of a code it
has verified, from that code's subject ref and its list's salt, and compares it with the tag of the code's bucket.
The salt is random per (app, list, unit): the tags of one resident in two lists differ, so leaked lists cannot be
joined, and a tag says nothing without the code it was made from.

The server, the simulator and the terminal SDK all use this module: the same tags, the same wire.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Any, Final

import msgspec

__all__ = [
    "TAG_BYTES",
    "ListChanges",
    "ListEntry",
    "ListSalt",
    "holder_tag",
    "tag_buckets",
]

TAG_BYTES: Final = 8
"""Bytes of one holder tag. A terminal compares a code with one tag per entry (the tag of the code's bucket), so
a false match needs 2**64 / entries tries."""


def holder_tag(salt: bytes, subject_ref: bytes) -> bytes:
    """The tag of one Ankang code's subject ref in the list salted with `salt`."""
    return hmac.digest(salt, subject_ref, hashlib.sha256)[:TAG_BYTES]


def tag_buckets(
    valid_from: float, expires_at: float, *, period_s: int, validity_s: int, skew_s: float
) -> range:
    """The code buckets whose codes a verifier could accept between `valid_from` and `expires_at`: a code of
    bucket b is valid from b * period_s to b * period_s + validity_s, with `skew_s` of clock tolerance."""
    first = int((valid_from - validity_s - skew_s) // period_s)
    last = int((expires_at + skew_s) // period_s)
    return range(max(first, 0), last + 1)


class _Wire(msgspec.Struct, frozen=True, kw_only=True):
    """Fields are only appended, with defaults (a terminal on an older SDK ignores the new ones)."""


class ListSalt(_Wire, frozen=True):
    """The salt of one list of the terminal's unit (unpadded base64url)."""

    list: str
    salt: str


class ListEntry(_Wire, frozen=True, omit_defaults=True):
    """One change of a terminal list: an entry held (or held again with new content), or dropped. Defaults are
    left out: a tombstone is its list, key, number and `dropped`."""

    list: str
    key: str
    seq: int
    """Its place in the unit's order of changes: the terminal syncs from the last one it holds."""
    dropped: bool = False
    """A tombstone: the app dropped the entry (a cancelled ticket); the terminal forgets it."""
    value: Any = None
    valid_from: int = 0
    """Unix seconds; the entry counts from then until `expires_at`."""
    expires_at: int = 0
    pass_number: int | None = None
    """The number of the app pass the entry belongs to (`p` of the pass's claims), when the app named one."""
    first_bucket: int | None = None
    """Bound to a resident: the code bucket of the first tag."""
    tags: str | None = None
    """Bound to a resident: unpadded base64url of one tag per bucket from `first_bucket` on, in order."""


class ListChanges(_Wire, frozen=True):
    """`GET /v1/terminal/lists?after=N`: the changes of the terminal's unit's lists after change N, oldest
    first, for the app bound to its scene. `reset`: N is not of this answer's (app, unit) or is ahead of the
    server (a new database): the terminal forgets every entry it holds, then applies these."""

    app_id: str | None
    unit: str | None
    cursor: int
    """The last change in this answer (or N when none): the next sync asks after it."""
    more: bool
    """More changes wait: ask again after `cursor`."""
    period_s: int
    """The Ankang code refresh period the tags' buckets count in."""
    salts: list[ListSalt] = []
    entries: list[ListEntry] = []
    reset: bool = False
