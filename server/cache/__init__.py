"""Shared short-lived state: replay guard, counters, pub/sub — Redis for many workers, in-process for one.

Both backends honour one contract (tests/test_cache.py runs it over each): `set_if_absent` is atomic and is what
the replay guard and single-use tokens stand on; `incr` creates a counter with its expiry in the same step, so a
crash can never leave an immortal rate-limit counter. When Redis cannot be reached, every operation raises
`CacheUnavailable` (503 `service.cache_unavailable` with Retry-After, unless the caller degrades): callers
decide per use whether to degrade, and nothing answers 500 because Redis restarted.

The contract is `Cache` (_base.py); the backends `MemoryCache` (_memory.py) and `RedisCache` (_redis.py);
`follow` and `ChannelView` (_channels.py) keep a worker's view of shared state current over a channel.
"""

from __future__ import annotations

from server.cache._base import Cache
from server.cache._channels import ChannelView, follow
from server.cache._memory import MemoryCache
from server.cache._redis import RedisCache

__all__ = ["Cache", "ChannelView", "MemoryCache", "RedisCache", "create_cache", "follow"]


def create_cache(redis_url: str, namespace: str = "yima:") -> Cache:
    return RedisCache(redis_url, namespace=namespace) if redis_url else MemoryCache()
