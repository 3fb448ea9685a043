"""What the credentials domain needs of other domains, in its own types: each port a Protocol that the app passes
in when the plugins start (server/app.py), so mypy checks every call across and nothing here imports the provider.

- `Residents`: the verified identity of an account and the account of an ID index (identity provides it).
"""

from __future__ import annotations

from typing import Protocol

import asyncpg


class Residents(Protocol):
    """What credentials need of identity (given at start-up; IdentityService answers it): statuses are kept by
    the blind index of the ID number, residents are accounts."""

    async def verified_id_index(self, conn: asyncpg.Connection, account_id: int) -> bytes | None:
        """None while the account's identity is not verified (or there is no such account)."""
        ...

    async def account_with_id_index(self, conn: asyncpg.Connection, id_index: bytes) -> int | None: ...
