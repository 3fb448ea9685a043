"""What the trust list and revocation wire formats share: strict URL-safe base64, and the base of the types read."""

from __future__ import annotations

import base64

import msgspec

__all__ = ["Inbound", "b64decode", "b64encode", "encoder"]

encoder = msgspec.json.Encoder()


def b64encode(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def b64decode(text: str) -> bytes:
    # Strict: only the URL-safe alphabet, padding optional on the wire.
    return base64.b64decode(text + "=" * (-len(text) % 4), altchars=b"-_", validate=True)


class Inbound(msgspec.Struct, forbid_unknown_fields=True):
    """Base of wire types we read: an unknown field means a newer format we must not half-understand."""
