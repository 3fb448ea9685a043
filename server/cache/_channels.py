"""Following a channel for as long as a task lives, and the per-worker views of shared state that stand on it."""

from __future__ import annotations

import abc
import asyncio
import logging
from collections.abc import Awaitable, Callable
from contextlib import suppress

from server.cache._base import Cache
from server.errors import CacheUnavailable
from server.observability import outage_log

log = logging.getLogger("yima.cache")


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
