"""Ended sessions (logout, refresh-token reuse, disabled terminal), known to every worker without a round trip.

Access tokens are stateless, so an ended session must be refused while its tokens have not expired. Each worker
keeps the set of ended session ids in memory: a revocation is written to the shared cache (an expiring set), and
announced on a channel every worker listens to. A worker (re)subscribes first and then reloads the whole set, so
nothing announced in between is missed. While its subscription is down, a worker asks the cache on every check
instead, so a lost connection can only make checks slower, never let an ended session through.
"""

from __future__ import annotations

import asyncio
import contextlib
import time

from server.cache import Cache, follow

_SET = "sessions:ended"
_CHANNEL = "sessions:ended"


class SessionRevocations:
    def __init__(self, cache: Cache) -> None:
        self._cache = cache
        self._ended: dict[str, float] = {}
        self._live = False
        self._first_load = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._task = asyncio.create_task(self._listen())
        # Wait (briefly) for the first load; if Redis is slow, checks go to the cache until it is in.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._first_load.wait(), 1.0)

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def end(self, session_id: str, ttl_s: float) -> None:
        """End a session on every worker for ttl_s (at least the lifetime of its longest access token)."""
        self._ended[session_id] = time.monotonic() + ttl_s
        await self._cache.expiring_set_add(_SET, session_id, ttl_s)
        await self._cache.publish(_CHANNEL, f"{session_id} {ttl_s}".encode())

    async def is_ended(self, session_id: str) -> bool:
        expires = self._ended.get(session_id)
        if expires is not None:
            if expires > time.monotonic():
                return True
            del self._ended[session_id]
        if self._live:
            return False
        return session_id in await self._cache.expiring_set_members(_SET)

    async def _listen(self) -> None:
        await follow(self._cache, _CHANNEL, self._on_message, on_subscribed=self._reload, on_lost=self._lose)

    async def _reload(self) -> None:
        for member in await self._cache.expiring_set_members(_SET):
            # The set does not carry each member's expiry; keep it for a token lifetime at most.
            self._ended.setdefault(member, time.monotonic() + 3600)
        self._live = True
        self._first_load.set()

    def _lose(self) -> None:
        self._live = False

    async def _on_message(self, message: bytes) -> None:
        session_id, _, ttl = message.decode().partition(" ")
        self._ended[session_id] = time.monotonic() + float(ttl or 3600)
        if len(self._ended) > 100_000:
            self._sweep()

    def _sweep(self) -> None:
        now = time.monotonic()
        for session_id in [s for s, exp in self._ended.items() if exp <= now]:
            del self._ended[session_id]
