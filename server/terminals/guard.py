"""The replay guard shared by every worker, with the revocation mark read in the same round trip.

`RedisScanGuard` sends `SET key value NX GET` (claim, or read the earlier claim) and, for our own codes, `GET` of the
resident's code-generation mark, pipelined: one network round trip per scan. `CacheScanGuard` does the same over
the in-process cache of a single-worker `yima dev`. tests/terminals/test_guard.py runs one contract over both.
"""

from __future__ import annotations

import abc

import redis.asyncio as aioredis

from server.cache import Cache


def _bytes(value: object) -> bytes | None:
    return None if value is None else bytes(value)  # type: ignore[call-overload]


class ScanGuard(abc.ABC):
    @abc.abstractmethod
    async def claim(
        self, replay_key: str | None, value: bytes, ttl_s: float, mark_key: str | None = None
    ) -> tuple[bytes | None, bytes | None]:
        """Store value under replay_key unless present (no replay_key: only read the mark). Returns (the earlier
        value, or None if this call stored it; the value under mark_key, or None)."""

    @abc.abstractmethod
    async def close(self) -> None:
        """Release connections."""


class RedisScanGuard(ScanGuard):
    def __init__(self, url: str, namespace: str) -> None:
        self._redis = aioredis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=5)
        self._ns = namespace

    async def claim(
        self, replay_key: str | None, value: bytes, ttl_s: float, mark_key: str | None = None
    ) -> tuple[bytes | None, bytes | None]:
        if replay_key is None:
            return None, None if mark_key is None else _bytes(await self._redis.get(self._ns + mark_key))
        px = max(1, int(ttl_s * 1000))
        if mark_key is None:
            earlier = await self._redis.set(self._ns + replay_key, value, px=px, nx=True, get=True)
            return _bytes(earlier), None
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.set(self._ns + replay_key, value, px=px, nx=True, get=True)
            pipe.get(self._ns + mark_key)
            earlier, mark = await pipe.execute()
        return _bytes(earlier), _bytes(mark)

    async def close(self) -> None:
        await self._redis.aclose()


class CacheScanGuard(ScanGuard):
    """Over the `Cache` interface: two calls, atomic enough for one process (the in-process cache)."""

    def __init__(self, cache: Cache) -> None:
        self._cache = cache

    async def claim(
        self, replay_key: str | None, value: bytes, ttl_s: float, mark_key: str | None = None
    ) -> tuple[bytes | None, bytes | None]:
        earlier = None
        if replay_key is not None and not await self._cache.set_if_absent(replay_key, value, ttl_s):
            earlier = await self._cache.get(replay_key) or value
        mark = await self._cache.get(mark_key) if mark_key is not None else None
        return earlier, mark

    async def close(self) -> None:
        return None
