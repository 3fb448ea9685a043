"""Shared short-lived state: replay guard, counters, pub/sub — Redis for many workers, in-process for one.

Both backends honour one contract (tests/test_cache.py runs it over each): `set_if_absent` is atomic and is what
the replay guard and single-use tokens stand on; `incr` creates a counter with its expiry in the same step, so a
crash can never leave an immortal rate-limit counter. When Redis cannot be reached, every operation raises
`CacheUnavailable` (503 `service.cache_unavailable` with Retry-After, unless the caller degrades): callers
decide per use whether to degrade, and nothing answers 500 because Redis restarted.
"""

from __future__ import annotations

import abc
import asyncio
import functools
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from contextlib import AbstractAsyncContextManager, asynccontextmanager, suppress
from typing import Any, ParamSpec, TypeVar

import redis.asyncio as aioredis
import redis.exceptions

from server.errors import CacheUnavailable
from server.observability import outage_log

log = logging.getLogger("yima.cache")


class Cache(abc.ABC):
    """What the server needs from a shared cache."""

    @abc.abstractmethod
    async def set_if_absent(self, key: str, value: bytes, ttl_s: float) -> bool:
        """Store value under key unless present; True if this call stored it."""

    @abc.abstractmethod
    async def get(self, key: str) -> bytes | None:
        """The value, or None when absent or expired."""

    @abc.abstractmethod
    async def set(self, key: str, value: bytes, ttl_s: float) -> None:
        """Store value under key with an expiry, replacing any value."""

    @abc.abstractmethod
    async def delete(self, key: str) -> None:
        """Remove key if present."""

    @abc.abstractmethod
    async def incr(self, key: str, ttl_s: float, amount: int = 1) -> int:
        """Add to a counter, creating it with the expiry when absent; returns the new value."""

    async def incr_many(self, keys: list[str], ttl_s: float) -> list[int]:
        """Add one to each counter (created with the expiry when absent), in one round trip where the cache
        allows; the new values."""
        return [await self.incr(key, ttl_s) for key in keys]

    @abc.abstractmethod
    async def ttl(self, key: str) -> float | None:
        """Seconds until key expires, None if absent."""

    @abc.abstractmethod
    async def expiring_set_add(self, key: str, member: str, ttl_s: float) -> None:
        """Add member to a set in which each member expires on its own."""

    @abc.abstractmethod
    async def expiring_set_members(self, key: str) -> frozenset[str]:
        """The members of an expiring set that have not expired."""

    @abc.abstractmethod
    async def publish(self, channel: str, message: bytes) -> int:
        """Send message to every current subscriber of channel, in any worker; how many received it."""

    @abc.abstractmethod
    def subscribe(self, channel: str) -> AbstractAsyncContextManager[AsyncIterator[bytes]]:
        """Async context manager yielding an iterator of messages published after it was entered."""

    @abc.abstractmethod
    async def ping(self) -> None:
        """Raise if the backend is unreachable."""

    @abc.abstractmethod
    async def close(self) -> None:
        """Release connections."""


class MemoryCache(Cache):
    """One process only: `yima dev` and single-worker deployments. The clock is injectable for tests."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._data: dict[str, tuple[bytes, float]] = {}
        self._subscribers: dict[str, set[asyncio.Queue[bytes]]] = {}
        self._sets: dict[str, dict[str, float]] = {}
        self._ops = 0

    def _live(self, key: str) -> bytes | None:
        entry = self._data.get(key)
        if entry is None:
            return None
        if entry[1] <= self._clock():
            del self._data[key]
            return None
        return entry[0]

    def _sweep(self) -> None:
        # Amortised expiry so a long-running dev server does not grow without bound.
        self._ops += 1
        if self._ops % 1024 == 0:
            now = self._clock()
            for key in [k for k, (_, exp) in self._data.items() if exp <= now]:
                del self._data[key]

    async def set_if_absent(self, key: str, value: bytes, ttl_s: float) -> bool:
        self._sweep()
        if self._live(key) is not None:
            return False
        self._data[key] = (value, self._clock() + ttl_s)
        return True

    async def get(self, key: str) -> bytes | None:
        return self._live(key)

    async def set(self, key: str, value: bytes, ttl_s: float) -> None:
        self._sweep()
        self._data[key] = (value, self._clock() + ttl_s)

    async def delete(self, key: str) -> None:
        self._data.pop(key, None)

    async def incr(self, key: str, ttl_s: float, amount: int = 1) -> int:
        self._sweep()
        current = self._live(key)
        if current is None:
            value, expires = amount, self._clock() + ttl_s
        else:
            value, expires = int(current) + amount, self._data[key][1]
        self._data[key] = (str(value).encode(), expires)
        return value

    async def ttl(self, key: str) -> float | None:
        if self._live(key) is None:
            return None
        return self._data[key][1] - self._clock()

    async def expiring_set_add(self, key: str, member: str, ttl_s: float) -> None:
        self._sets.setdefault(key, {})[member] = self._clock() + ttl_s

    async def expiring_set_members(self, key: str) -> frozenset[str]:
        now = self._clock()
        members = self._sets.get(key, {})
        for gone in [m for m, exp in members.items() if exp <= now]:
            del members[gone]
        return frozenset(members)

    async def publish(self, channel: str, message: bytes) -> int:
        queues = list(self._subscribers.get(channel, ()))
        for queue in queues:
            queue.put_nowait(message)
        return len(queues)

    def subscribe(self, channel: str) -> AbstractAsyncContextManager[AsyncIterator[bytes]]:
        return self._subscribe(channel)

    @asynccontextmanager
    async def _subscribe(self, channel: str) -> AsyncIterator[AsyncIterator[bytes]]:
        queue: asyncio.Queue[bytes] = asyncio.Queue()
        self._subscribers.setdefault(channel, set()).add(queue)

        async def messages() -> AsyncIterator[bytes]:
            while True:
                yield await queue.get()

        try:
            yield messages()
        finally:
            self._subscribers[channel].discard(queue)

    async def ping(self) -> None:
        return None

    async def close(self) -> None:
        self._data.clear()


_P = ParamSpec("_P")
_R = TypeVar("_R")
_LOST = (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError)


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
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.incrby(self._ns + key, amount)
            # NX: only the creating call sets the expiry, so the window does not slide with every hit.
            pipe.pexpire(self._ns + key, max(1, int(ttl_s * 1000)), nx=True)
            value, _ = await pipe.execute()
        return int(value)

    @_unavailable_when_lost
    async def incr_many(self, keys: list[str], ttl_s: float) -> list[int]:
        async with self._redis.pipeline(transaction=True) as pipe:
            for key in keys:
                pipe.incrby(self._ns + key, 1)
                pipe.pexpire(self._ns + key, max(1, int(ttl_s * 1000)), nx=True)
            values = await pipe.execute()
        return [int(v) for v in values[::2]]

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
        await self._redis.aclose()


def create_cache(redis_url: str, namespace: str = "yima:") -> Cache:
    return RedisCache(redis_url, namespace=namespace) if redis_url else MemoryCache()


async def follow(
    cache: Cache,
    channel: str,
    on_message: Callable[[bytes], Awaitable[None]],
    *,
    on_subscribed: Callable[[], Awaitable[None]] | None = None,
    on_lost: Callable[[], None] | None = None,
) -> None:
    """Deliver every message published on `channel` to `on_message` for as long as the calling task lives.

    A failed subscription (Redis restarting, a network blip) is retried with backoff; `on_subscribed` runs each
    time the subscription is (re)established — after subscribing, so a reload there misses nothing — and
    `on_lost` each time it drops. A failing `on_message` is logged and does not end the subscription.
    """
    backoff = 0.1
    while True:
        try:
            async with cache.subscribe(channel) as messages:
                if on_subscribed is not None:
                    await on_subscribed()
                backoff = 0.1
                async for message in messages:
                    try:
                        await on_message(message)
                    except Exception:
                        log.warning("handling a message failed", extra={"channel": channel}, exc_info=True)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            # Every channel of every worker retries while Redis is down: counted, one line per interval.
            outage_log.failed("cache", f"subscription: {type(exc).__name__}")
        if on_lost is not None:
            on_lost()
        await asyncio.sleep(backoff)
        backoff = min(backoff * 2, 5.0)


class ChannelView(abc.ABC):
    """A worker's in-memory view of shared state that one channel keeps current (ended sessions, account roles).

    `start` follows the channel in a task and waits (briefly) for the first load. Each (re)subscription calls
    `_reload` after subscribing, so nothing announced in between is missed; while the subscription is down
    (`_live` is False) subclasses read the durable record instead, so an outage makes checks slower, never stale.
    """

    channel: str

    def __init__(self, cache: Cache) -> None:
        self._cache = cache
        self._live = False
        self._first_load = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        listen = follow(
            self._cache, self.channel, self._on_message, on_subscribed=self._subscribed, on_lost=self._lost
        )
        self._task = asyncio.create_task(listen, name=f"{self.channel} listener")
        with suppress(TimeoutError):  # a slow Redis: checks read the durable record until the first load
            await asyncio.wait_for(self._first_load.wait(), 1.0)

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with suppress(asyncio.CancelledError):
                await self._task

    async def _announce(self, message: bytes) -> None:
        """Tell every worker; when Redis is down, those without a subscription read the record anyway."""
        try:
            await self._cache.publish(self.channel, message)
        except CacheUnavailable:
            outage_log.failed("cache", "publish")

    async def _subscribed(self) -> None:
        await self._reload()
        self._live = True
        self._first_load.set()

    def _lost(self) -> None:
        self._live = False

    @abc.abstractmethod
    async def _reload(self) -> None:
        """Bring the view up to the durable record (after every (re)subscription)."""

    @abc.abstractmethod
    async def _on_message(self, message: bytes) -> None:
        """Apply one announcement."""
