"""Base Structs for everything that crosses the HTTP boundary, and shared field constraints."""

from __future__ import annotations

from typing import Annotated

import msgspec


class Inbound(msgspec.Struct, forbid_unknown_fields=True):
    """Request bodies. Unknown fields are refused so a typo ("phnoe") fails loudly instead of being ignored."""


class Outbound(msgspec.Struct, omit_defaults=True):
    """Response bodies. Defaults are omitted to keep mobile payloads small; fields are only ever appended."""


Phone = Annotated[
    str, msgspec.Meta(pattern=r"^1[3-9]\d{9}$", description="Mainland mobile number, 11 digits")
]
IdempotencyKey = Annotated[str, msgspec.Meta(min_length=8, max_length=128, pattern=r"^[A-Za-z0-9._:-]+$")]
