"""What the one-card domain needs of other domains, in its own types: each port a Protocol that the app passes in
when the plugins start (server/app.py), so mypy checks every call across and nothing here imports the provider.

- `VerifiedResidents`: a resident's verified identity (identity provides it).
- `RevocationSource` / `RevocationPublisher`: how a revoked device certificate reaches terminals (credentials).
"""

from __future__ import annotations

import datetime as dt
from typing import Protocol

import asyncpg


class RevocationPublisher(Protocol):
    """How a revoked device certificate reaches terminals: the credentials domain's RevocationService, which
    serves the per-issuer revocation deltas at GET /v1/revocations."""

    async def revoke_device_certificate(
        self, conn: asyncpg.Connection, *, actor: str, serial: bytes, expires_at: dt.datetime, reason: str
    ) -> int: ...

    async def announce(self) -> None: ...


class RevocationSource(Protocol):
    """The credentials domain's services, as one-card's plugin takes them: their revocation publisher."""

    @property
    def revocations(self) -> RevocationPublisher: ...


class VerifiedResidents(Protocol):
    """What one-card needs of identity (given at start-up; IdentityService answers it): a card opens only for
    the verified identity the issuer gave it to."""

    async def verified_id_index(self, conn: asyncpg.Connection, account_id: int) -> bytes | None: ...

    async def account_id_for_phone(self, conn: asyncpg.Connection, phone: str, *, create: bool) -> int | None:
        """The account of a phone number: the demo seed's resident, whose one-card `yima dev` opens."""
        ...
