"""The roles an account holds now, as the access guard sees them: PostgreSQL's record, cached per worker.

Access tokens carry the roles they were issued with; believing them kept a revoked operator an operator until the
token expired, long enough to grant itself the role again. The guard asks this cache instead. A change is announced
on a channel every worker listens to and drops that account's entries; a worker (re)subscribes first and then
empties its cache, so nothing announced in between is missed. While its subscription is down, every check reads
PostgreSQL: a Redis outage makes checks slower, never stale.

Entries are kept per session as well as per account: a role change also ends the account's sessions, so a new
login always reads the record afresh, even where the announcement cannot reach (a CLI process beside `yima dev`,
whose cache is in-process).
"""

from __future__ import annotations

import logging
from typing import Protocol

import asyncpg

from server.cache import Cache, ChannelView
from server.db import Database

log = logging.getLogger("yima.auth.roles")

_CHANNEL = "roles:changed"
_MAX_ENTRIES = 100_000


class RoleRecord(Protocol):
    """Where the roles granted to accounts are kept: identity's record, handed to the core by server/app.py."""

    async def roles_of(self, conn: asyncpg.Connection, account_id: int) -> list[str]: ...


class LiveRoles(ChannelView):
    channel = _CHANNEL

    def __init__(self, cache: Cache, db: Database, record: RoleRecord) -> None:
        super().__init__(cache)
        self._db = db
        self._record = record
        self._known: dict[int, dict[str, frozenset[str]]] = {}
        self._entries = 0

    async def of(self, account_id: int, session_id: str) -> frozenset[str]:
        """The account's roles now (empty for an account that does not exist)."""
        sessions = self._known.get(account_id) if self._live else None
        known = sessions.get(session_id) if sessions is not None else None
        if known is not None:
            return known
        async with self._db.connection() as conn:
            roles = frozenset(await self._record.roles_of(conn, account_id))
        if self._live:
            if self._entries >= _MAX_ENTRIES:
                self._known.clear()
                self._entries = 0
            self._known.setdefault(account_id, {})[session_id] = roles
            self._entries += 1
        return roles

    async def changed(self, account_id: int) -> None:
        """Call after the change has committed: every worker reads the account's roles again."""
        self._forget(account_id)
        await self._announce(str(account_id).encode())

    async def _reload(self) -> None:
        self._known.clear()  # whatever changed while unsubscribed is read afresh
        self._entries = 0

    async def _on_message(self, message: bytes) -> None:
        self._forget(int(message.decode()))

    def _forget(self, account_id: int) -> None:
        self._entries -= len(self._known.pop(account_id, {}))
