"""Ended sessions (logout, refresh-token reuse, disabled terminal), known to every worker without a round trip.

Access tokens are stateless, so an ended session must be refused while its tokens have not expired. PostgreSQL
holds the record (`ended_sessions`); each worker keeps the set in memory, and an end is announced on a channel
every worker listens to. A worker (re)subscribes first and then reloads the whole set from PostgreSQL, so nothing
announced in between is missed. While its subscription is down (Redis restarting, unreachable), a worker asks
PostgreSQL on every check instead: a Redis outage can only make checks slower, never let an ended session through,
and never turn a check into an error.
"""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime, timedelta

from server.auth import repository
from server.cache import Cache, ChannelView
from server.db import Database

log = logging.getLogger("yima.auth.sessions")

_CHANNEL = "sessions:ended"


class SessionRevocations(ChannelView):
    channel = _CHANNEL

    def __init__(self, cache: Cache, db: Database) -> None:
        super().__init__(cache)
        self._db = db
        self._ended: dict[str, float] = {}

    async def end(self, session_id: str, ttl_s: float) -> None:
        """End a session on every worker for ttl_s (at least the lifetime of its longest access token)."""
        async with self._db.connection() as conn:
            await repository.record_end(conn, session_id, datetime.now(UTC) + timedelta(seconds=ttl_s))
        self._ended[session_id] = time.monotonic() + ttl_s
        await self._announce(f"{session_id} {ttl_s}".encode())  # recorded already: see ChannelView

    async def is_ended(self, session_id: str) -> bool:
        expires = self._ended.get(session_id)
        if expires is not None:
            if expires > time.monotonic():
                return True
            del self._ended[session_id]
        if self._live:
            return False
        async with self._db.connection() as conn:
            until = await repository.ended_until(conn, session_id, datetime.now(UTC))
        if until is None:
            return False
        self._ended[session_id] = time.monotonic() + (until - datetime.now(UTC)).total_seconds()
        return True

    async def _reload(self) -> None:
        now = datetime.now(UTC)
        async with self._db.connection() as conn:
            rows = await repository.still_ended(conn, now)
        base = time.monotonic()
        for row in rows:
            self._ended[row["session_id"]] = base + (row["ended_until"] - now).total_seconds()

    async def _on_message(self, message: bytes) -> None:
        session_id, _, ttl = message.decode().partition(" ")
        self._ended[session_id] = time.monotonic() + float(ttl or 3600)
        if len(self._ended) > 100_000:
            self._sweep()

    def _sweep(self) -> None:
        now = time.monotonic()
        for session_id in [s for s, exp in self._ended.items() if exp <= now]:
            del self._ended[session_id]
