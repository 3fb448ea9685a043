"""Fixed-window rate limits on the shared cache, so a limit holds across every worker."""

from __future__ import annotations

from server.cache import Cache
from server.errors import TooManyRequests


async def enforce(cache: Cache, bucket: str, *, limit: int, window_s: int, what: str) -> None:
    key = f"rl:{bucket}"
    count = await cache.incr(key, window_s)
    if count > limit:
        remaining = await cache.ttl(key)
        raise TooManyRequests(
            f"Too many {what}; try again later",
            retry_after_s=int(remaining or window_s) + 1,
        )
