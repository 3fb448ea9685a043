"""Base Structs for everything that crosses the HTTP boundary, and shared field constraints."""

from __future__ import annotations

import base64
import unicodedata
from typing import Annotated

import msgspec


class Inbound(msgspec.Struct, forbid_unknown_fields=True):
    """Request bodies. Unknown fields are refused so a typo ("phnoe") fails loudly instead of being ignored."""


class Outbound(msgspec.Struct, omit_defaults=True):
    """Response bodies. Defaults are omitted to keep mobile payloads small; fields are only ever appended."""


def whole(body: str) -> str:
    r"""A pattern that matches the whole text and nothing else, for identifiers.

    msgspec and Litestar search with Python's `re`, whose `$` also matches before a final newline: "13500135002\n"
    passed as a phone number and counted apart from "13500135002" against the per-number OTP limit. `(?!\n)`
    closes that, and reads the same in the ECMAScript dialect of the OpenAPI document. Bodies spell digits `[0-9]`:
    `\d` matches every script's digits, so a full-width "３" passed too.
    """
    return f"^{body}(?!\\n)$"


def b64url(raw: bytes) -> str:
    """Unpadded base64url (RFC 4648 section 5), as keys and signatures travel in JSON and headers."""
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def b64url_decode(text: str) -> bytes:
    """The bytes of unpadded (or padded) base64url; a character outside its alphabet raises binascii.Error."""
    return base64.b64decode(text + "=" * (-len(text) % 4), altchars=b"-_", validate=True)


def ascii_text(raw: str) -> str | None:
    """What a resident typed, as ASCII after NFKC (full-width "３" is "3"); None when it is not ASCII even then."""
    value = unicodedata.normalize("NFKC", raw)
    return value if value.isascii() else None


Phone = Annotated[
    str, msgspec.Meta(pattern=whole("1[3-9][0-9]{9}"), description="Mainland mobile number, 11 digits")
]
IdempotencyKey = Annotated[str, msgspec.Meta(min_length=8, max_length=128, pattern=whole("[A-Za-z0-9._:-]+"))]
