"""The in-process backend: one process only (`yima dev`, single-worker deployments)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager

from server.cache._base import Cache


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
