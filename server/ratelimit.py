"""Fixed-window rate limits on the shared cache, so a limit holds across every worker.

While the shared cache is unreachable, counting moves to this process's own memory rather than refusing every
request: a limit then holds per worker (at most the number of workers times looser) until Redis is back, which
keeps logins working through a Redis outage and still bounds what one client can send (docs/operations.md).
"""

from __future__ import annotations

from server.cache import Cache, MemoryCache
from server.errors import CacheUnavailable, TooManyRequests
from server.observability import outage_log


class RateLimits:
    def __init__(self, cache: Cache) -> None:
        self._cache = cache
        self._local = MemoryCache()

    async def hit(self, key: str, window_s: float) -> int:
        """Add one hit to the window's counter under `key`; the hits so far in this window."""
        return (await self._hit(key, window_s))[0]

    async def enforce(self, bucket: str, *, limit: int, window_s: int, what: str) -> None:
        key = f"rl:{bucket}"
        count, counter = await self._hit(key, window_s)
        if count > limit:
            try:
                remaining = await counter.ttl(key)
            except CacheUnavailable:
                remaining = None
            raise TooManyRequests(
                f"Too many {what}; try again later",
                retry_after_s=int(remaining or window_s) + 1,
            )

    async def _hit(self, key: str, window_s: float) -> tuple[int, Cache]:
        try:
            return await self._cache.incr(key, window_s), self._cache
        except CacheUnavailable:
            outage_log.failed("cache", "rate_limit")
            return await self._local.incr(key, window_s), self._local
