"""The Redis backend, shared by every worker; a lost connection is `CacheUnavailable`, whatever the client raised."""

from __future__ import annotations

import asyncio
import functools
import hashlib
import time
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any, ParamSpec, TypeVar

import redis.asyncio as aioredis
import redis.exceptions

from server.cache._base import Cache
from server.cache._pipelined import PipelinedCommands
from server.errors import CacheUnavailable

_P = ParamSpec("_P")
_R = TypeVar("_R")
_LOST = (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError)

# Fixed-window counters: add ARGV[1] to each key; NX: only the creating call sets the expiry (ARGV[2] ms), so the
# window does not slide with every hit.
_COUNT = """
local out = {}
for i, key in ipairs(KEYS) do
  out[i] = redis.call('INCRBY', key, ARGV[1])
  redis.call('PEXPIRE', key, ARGV[2], 'NX')
end
return out
"""
_COUNT_SHA = hashlib.sha1(_COUNT.encode()).hexdigest()  # noqa: S324 - Redis names scripts by SHA-1


def _unavailable_when_lost(
    method: Callable[_P, Coroutine[Any, Any, _R]],
) -> Callable[_P, Coroutine[Any, Any, _R]]:
    """Redis refusing or dropping connections becomes the one error callers know, whatever the client raised."""

    @functools.wraps(method)
    async def wrapper(*args: _P.args, **kwargs: _P.kwargs) -> _R:
        try:
            return await method(*args, **kwargs)
        except _LOST as exc:
            raise CacheUnavailable() from exc

    return wrapper


class RedisCache(Cache):
    """Shared by every worker on every machine; keys are namespaced so one Redis can serve several deployments."""

    def __init__(self, url: str, *, namespace: str = "yima:") -> None:
        self._redis = aioredis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=5)
        self._ns = namespace
        self._counting: PipelinedCommands | aioredis.Redis = self._redis
        """Where counters go: one pipelined connection (every gateway call counts), redis-py for TLS."""
        try:
            self._counting = PipelinedCommands(url, timeout_s=5)
        except ValueError:
            pass

    @_unavailable_when_lost
    async def set_if_absent(self, key: str, value: bytes, ttl_s: float) -> bool:
        return bool(await self._redis.set(self._ns + key, value, px=max(1, int(ttl_s * 1000)), nx=True))

    @_unavailable_when_lost
    async def get(self, key: str) -> bytes | None:
        value = await self._redis.get(self._ns + key)
        return value if value is None or isinstance(value, bytes) else str(value).encode()

    @_unavailable_when_lost
    async def set(self, key: str, value: bytes, ttl_s: float) -> None:
        await self._redis.set(self._ns + key, value, px=max(1, int(ttl_s * 1000)))

    @_unavailable_when_lost
    async def delete(self, key: str) -> None:
        await self._redis.delete(self._ns + key)

    @_unavailable_when_lost
    async def incr(self, key: str, ttl_s: float, amount: int = 1) -> int:
        (value,) = await self._count([key], amount, ttl_s)
        return value

    @_unavailable_when_lost
    async def incr_many(self, keys: list[str], ttl_s: float) -> list[int]:
        return await self._count(keys, 1, ttl_s)

    async def _count(self, keys: list[str], amount: int, ttl_s: float) -> list[int]:
        """`_COUNT` by its digest (loaded by the first EVAL after a Redis restart or SCRIPT FLUSH): one command,
        atomic like MULTI/EXEC. The gateway counts two quotas on every call, and redis-py's transaction pipeline
        cost 2-2.5x the CPU of one EVALSHA, which costs 10x a command on the pipelined connection
        (docs/benchmarks.md)."""
        args = (len(keys), *(self._ns + key for key in keys), amount, max(1, int(ttl_s * 1000)))
        try:
            values = await self._counting.execute_command("EVALSHA", _COUNT_SHA, *args)
        except redis.exceptions.NoScriptError:
            values = await self._counting.execute_command("EVAL", _COUNT, *args)
        return [int(v) for v in values]

    @_unavailable_when_lost
    async def ttl(self, key: str) -> float | None:
        ms = await self._redis.pttl(self._ns + key)
        return None if ms < 0 else ms / 1000

    @_unavailable_when_lost
    async def expiring_set_add(self, key: str, member: str, ttl_s: float) -> None:
        # A sorted set scored by expiry time: stale members are trimmed on every write.
        now_ms = int(time.time() * 1000)
        expires_ms = now_ms + int(ttl_s * 1000)
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.zadd(self._ns + key, {member: expires_ms})
            pipe.zremrangebyscore(self._ns + key, "-inf", now_ms)
            pipe.pexpire(self._ns + key, int(ttl_s * 1000), gt=True)
            pipe.pexpire(self._ns + key, int(ttl_s * 1000), nx=True)
            await pipe.execute()

    @_unavailable_when_lost
    async def expiring_set_members(self, key: str) -> frozenset[str]:
        members = await self._redis.zrangebyscore(self._ns + key, int(time.time() * 1000), "+inf")
        return frozenset(m.decode() if isinstance(m, bytes) else str(m) for m in members)

    @_unavailable_when_lost
    async def publish(self, channel: str, message: bytes) -> int:
        return int(await self._redis.publish(self._ns + channel, message))

    def subscribe(self, channel: str) -> AbstractAsyncContextManager[AsyncIterator[bytes]]:
        return self._subscribe(channel)

    @asynccontextmanager
    async def _subscribe(self, channel: str) -> AsyncIterator[AsyncIterator[bytes]]:
        pubsub = self._redis.pubsub()
        await pubsub.subscribe(self._ns + channel)
        # Enter only once Redis confirms: the contract is "every message published after entering", and callers
        # such as `follow` reload state right after entering — a message in the gap before the confirmation
        # would be lost for good.
        async with asyncio.timeout(5):
            while True:
                msg = await pubsub.get_message(timeout=1.0)
                if msg is not None and msg["type"] == "subscribe":
                    break

        async def messages() -> AsyncIterator[bytes]:
            task = asyncio.current_task()
            while True:
                msg = await pubsub.get_message(timeout=1.0)
                # A cancel that lands as the read timeout fires can be swallowed inside the client (it surfaces
                # as a plain timeout); honour it here, or a cancelled listener would loop forever.
                if task is not None and task.cancelling():
                    raise asyncio.CancelledError
                if msg is not None and msg["type"] == "message":
                    yield bytes(msg["data"])

        try:
            yield messages()
        finally:
            await pubsub.unsubscribe()
            await pubsub.aclose()

    @_unavailable_when_lost
    async def ping(self) -> None:
        await self._redis.ping()

    async def close(self) -> None:
        if isinstance(self._counting, PipelinedCommands):
            self._counting.close()
        await self._redis.aclose()
