"""Consents as the platform checks them on each call and scan: PostgreSQL's record, cached per worker.

A resident's decision is read on every `ctx.user.scope(...)`, every `credentials.verify` of their code and every
scan at a terminal of an app declaring `health_color`. Each worker keeps what it read; a decision (grant, refusal,
withdrawal) is announced on a channel after it commits, and every worker drops that resident's entries. As the
roles (server/auth/live_roles.py): a worker (re)subscribes first and then empties its cache, and while its
subscription is down every check reads PostgreSQL (slower, never stale). An entry read while an announcement
arrived is not kept (the epoch), so a withdrawal holds at the next call in every worker. An announcement can
still be lost (a publish Redis refused, a subscription that died without a word), so no entry is believed for
longer than ENTRY_TTL_S: past it the worker reads PostgreSQL again.
"""

from __future__ import annotations

import time

from server.cache import Cache, ChannelView
from server.db import Database
from server.platform.residents import repository

_CHANNEL = "consents:changed"
_MAX_ENTRIES = 200_000
ENTRY_TTL_S = 30.0
"""The longest a worker answers from a cached decision without reading it again (a lost announcement's bound)."""


class LiveConsents(ChannelView):
    channel = _CHANNEL

    def __init__(self, cache: Cache, db: Database) -> None:
        super().__init__(cache)
        self._db = db
        self._known: dict[int, dict[tuple[str, str], tuple[bool, float]]] = {}
        self._entries = 0
        self._epoch = 0

    async def granted(self, account_id: int, app_id: str, scope: str) -> bool:
        """Whether the resident granted `scope` to `app_id` now (never asked, refused or withdrawn: False)."""
        if self._live:
            known = self._known.get(account_id)
            if known is not None and (found := known.get((app_id, scope))) is not None:
                granted, read_at = found
                if time.monotonic() - read_at < ENTRY_TTL_S:
                    return granted
        epoch, read_at = self._epoch, time.monotonic()
        async with self._db.connection() as conn:
            granted = await repository.consent(conn, account_id, app_id, scope) is True
        if self._live and epoch == self._epoch:
            if self._entries >= _MAX_ENTRIES:
                self._known.clear()
                self._entries = 0
            entries = self._known.setdefault(account_id, {})
            self._entries += (app_id, scope) not in entries
            entries[(app_id, scope)] = (granted, read_at)
        return granted

    async def changed(self, account_id: int) -> None:
        """Call after the decision has committed: every worker reads the resident's consents again."""
        self._forget(account_id)
        await self._announce(str(account_id).encode())

    async def _reload(self) -> None:
        self._epoch += 1
        self._known.clear()
        self._entries = 0

    async def _on_message(self, message: bytes) -> None:
        self._forget(int(message.decode()))

    def _forget(self, account_id: int) -> None:
        self._epoch += 1
        self._entries -= len(self._known.pop(account_id, {}))
