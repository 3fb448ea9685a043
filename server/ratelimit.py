"""The one rate limiter: fixed windows on the shared cache, so a limit holds across every worker.

Every limit in the server goes through `RateLimits.enforce`: OTP requests per phone and address (identity),
enrolment and token attempts (terminals), device logins (platform) and the gateway's per-app and per-resident
quotas. A window starts with its key's first hit and lasts `window_s`; a refused caller is told, in Retry-After,
when its window ends.

While the shared cache is unreachable, counting moves to this process's own memory rather than refusing every
request: a limit then holds per worker (at most the number of workers times looser) until Redis is back, which
keeps logins working through a Redis outage and still bounds what one client can send (docs/operations.md).
"""

from __future__ import annotations

from collections.abc import Callable

from server.cache import Cache, MemoryCache
from server.errors import CacheUnavailable, TooManyRequests
from server.observability import outage_log


class RateLimits:
    def __init__(self, cache: Cache) -> None:
        self._cache = cache
        self._local = MemoryCache()

    async def enforce(
        self,
        bucket: str,
        *,
        limit: int,
        window_s: int,
        what: str = "requests",
        refusal: Callable[[int], TooManyRequests] | None = None,
    ) -> None:
        """Count one hit in `bucket`'s window; past `limit` hits, raise `refusal(retry_after_s)` (by default a
        429 `rate_limit.exceeded` naming `what`)."""
        key = f"rl:{bucket}"
        count, counter = await self._hit(key, window_s)
        if count > limit:
            try:
                remaining = await counter.ttl(key)
            except CacheUnavailable:
                remaining = None
            retry_after_s = int(remaining or window_s) + 1
            if refusal is not None:
                raise refusal(retry_after_s)
            raise TooManyRequests(f"Too many {what}; try again later", retry_after_s=retry_after_s)

    async def enforce_all(
        self, limits: list[tuple[str, int, Callable[[int], TooManyRequests]]], *, window_s: int
    ) -> None:
        """`enforce` for several (bucket, limit, refusal) at once, counted in one round trip to the shared
        cache (the gateway's per-app and per-resident quotas on every call); the first limit passed refuses."""
        keys = [f"rl:{bucket}" for bucket, _, _ in limits]
        try:
            counts, counter = await self._cache.incr_many(keys, window_s), self._cache
        except CacheUnavailable:
            outage_log.failed("cache", "rate_limit")
            counts, counter = await self._local.incr_many(keys, window_s), self._local
        for key, count, (_, limit, refusal) in zip(keys, counts, limits, strict=True):
            if count > limit:
                try:
                    remaining = await counter.ttl(key)
                except CacheUnavailable:
                    remaining = None
                raise refusal(int(remaining or window_s) + 1)

    async def _hit(self, key: str, window_s: float) -> tuple[int, Cache]:
        try:
            return await self._cache.incr(key, window_s), self._cache
        except CacheUnavailable:
            outage_log.failed("cache", "rate_limit")
            return await self._local.incr(key, window_s), self._local
