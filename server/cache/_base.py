"""The contract every cache backend honours (tests/test_cache.py runs it over each)."""

from __future__ import annotations

import abc
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager


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
