"""The replay guard shared by every worker, with the revocation mark read in the same round trip.

`RedisScanGuard` runs, per scan, `SET key value NX GET PX ttl` (claim, or read the earlier claim) and, for our own
codes, `GET` of the resident's code-generation mark. The claims of concurrent scans travel together as one call of
a small server-side script (`_CLAIMS`): one round trip and one command for many scans. (A pipeline of the same
commands cost redis-py's per-command packing and parsing in Python for every scan, ~10% of a scan worker.)
`CacheScanGuard` does the same over the in-process cache of a single-worker `yima dev`.

For codes spent once anywhere the guard is only a fast path in front of the durable claim (scan_replay_claims,
claimed in the scan record's own statement; docs/scan.md): such a scan only looks (`peek`), and the key is written
(`remember`) after the claim and its record have committed. So Redis never holds a claim whose record was lost,
and a flushed or restarted Redis answers fewer replays fast, never more codes accepted.
tests/terminals/test_guard.py runs one contract over both.
"""

from __future__ import annotations

import abc
import asyncio

import redis.asyncio as aioredis
import redis.exceptions

from server.cache import Cache
from server.errors import CacheUnavailable

GUARD_UNREACHABLE = (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError, CacheUnavailable)
"""What a guard raises while its store cannot be reached (the scan path decides whether it can do without)."""

# KEYS: the batch's replay keys, then its mark keys. ARGV: for each replay key its operation (c: claim, p: peek,
# s: set), value and TTL (ms). Answers one entry per key, in order: the earlier value or mark, or 0 when there was
# none (a Lua table cannot hold nil). SET ... NX GET needs Redis 7.
_CLAIMS = """
local out = {}
local claims = (#ARGV) / 3
for i = 1, #KEYS do
    local found
    local op = ARGV[3 * i - 2]
    if i > claims then
        found = redis.call('GET', KEYS[i])
    elseif op == 'c' then
        found = redis.call('SET', KEYS[i], ARGV[3 * i - 1], 'NX', 'GET', 'PX', ARGV[3 * i])
    elseif op == 'p' then
        found = redis.call('GET', KEYS[i])
    else
        redis.call('SET', KEYS[i], ARGV[3 * i - 1], 'PX', ARGV[3 * i])
    end
    out[i] = found or 0
end
return out
"""


def _found(value: object) -> bytes | None:
    return None if value == 0 else bytes(value)  # type: ignore[call-overload]


class ScanGuard(abc.ABC):
    @abc.abstractmethod
    async def claim(
        self,
        replay_key: str | None,
        value: bytes,
        ttl_s: float,
        mark_key: str | None = None,
        *,
        peek: bool = False,
    ) -> tuple[bytes | None, bytes | None]:
        """Store value under replay_key unless present (no replay_key: only read the mark; `peek`: only read the
        key). Returns (the earlier value, or None if this call stored it or found none; the value under mark_key,
        or None)."""

    @abc.abstractmethod
    async def remember(self, replay_key: str, value: bytes, ttl_s: float) -> None:
        """Store value under replay_key, without waiting for it where the store is remote: a fast-path hint
        written after the durable claim, so losing it costs nothing but speed."""

    @abc.abstractmethod
    async def close(self) -> None:
        """Release connections."""


class RedisScanGuard(ScanGuard):
    """Claims from concurrent scans travel together: while one pipeline is on the wire, new claims queue, and the
    next pipeline carries all of them (like the scan recorder's group commit). One claim alone goes at once; under
    load, the client's per-command cost is paid once per batch instead of once per scan."""

    def __init__(self, url: str, namespace: str, *, max_batch: int = 256) -> None:
        self._redis = aioredis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=5)
        self._ns = namespace
        self._max_batch = max_batch
        self._queue: list[
            tuple[
                str | None,
                bytes,
                bytes,
                int,
                str | None,
                asyncio.Future[tuple[bytes | None, bytes | None]] | None,
            ]
        ] = []
        self._sender: asyncio.Task[None] | None = None
        self._claims = self._redis.register_script(_CLAIMS)

    async def claim(
        self,
        replay_key: str | None,
        value: bytes,
        ttl_s: float,
        mark_key: str | None = None,
        *,
        peek: bool = False,
    ) -> tuple[bytes | None, bytes | None]:
        if replay_key is None and mark_key is None:
            return None, None
        future: asyncio.Future[tuple[bytes | None, bytes | None]] = asyncio.get_running_loop().create_future()
        self._enqueue(replay_key, b"p" if peek else b"c", value, ttl_s, mark_key, future)
        return await future

    async def remember(self, replay_key: str, value: bytes, ttl_s: float) -> None:
        # Nobody waits for it: it goes with the next batch of claims, and a failure is that batch's to report.
        self._enqueue(replay_key, b"s", value, ttl_s, None, None)

    def _enqueue(
        self,
        replay_key: str | None,
        op: bytes,
        value: bytes,
        ttl_s: float,
        mark_key: str | None,
        future: asyncio.Future[tuple[bytes | None, bytes | None]] | None,
    ) -> None:
        self._queue.append((replay_key, op, value, max(1, int(ttl_s * 1000)), mark_key, future))
        if self._sender is None or self._sender.done():
            self._sender = asyncio.create_task(self._send())

    async def _send(self) -> None:
        while self._queue:
            batch, self._queue = self._queue[: self._max_batch], self._queue[self._max_batch :]
            ns = self._ns
            keys: list[str] = [ns + replay_key for replay_key, *_ in batch if replay_key is not None]
            args: list[bytes | int] = []
            for replay_key, op, value, px, _, _ in batch:
                if replay_key is not None:
                    args += (op, value, px)
            keys += [ns + mark_key for *_, mark_key, _ in batch if mark_key is not None]
            try:
                found = iter(await self._claims(keys=keys, args=args))
            except Exception as exc:
                for *_, future in batch:
                    if future is not None and not future.done():
                        future.set_exception(exc)
                continue
            earlier = [_found(next(found)) if replay_key is not None else None for replay_key, *_ in batch]
            for (*_, mark_key, future), before in zip(batch, earlier, strict=True):
                mark = _found(next(found)) if mark_key is not None else None
                if future is not None and not future.done():
                    future.set_result((before, mark))

    async def close(self) -> None:
        if self._sender is not None:
            await asyncio.gather(self._sender, return_exceptions=True)
        await self._redis.aclose()


class CacheScanGuard(ScanGuard):
    """Over the `Cache` interface: two calls, atomic enough for one process (the in-process cache)."""

    def __init__(self, cache: Cache) -> None:
        self._cache = cache

    async def claim(
        self,
        replay_key: str | None,
        value: bytes,
        ttl_s: float,
        mark_key: str | None = None,
        *,
        peek: bool = False,
    ) -> tuple[bytes | None, bytes | None]:
        earlier = None
        if replay_key is not None:
            if peek:
                earlier = await self._cache.get(replay_key)
            elif not await self._cache.set_if_absent(replay_key, value, ttl_s):
                earlier = await self._cache.get(replay_key) or value
        mark = await self._cache.get(mark_key) if mark_key is not None else None
        return earlier, mark

    async def remember(self, replay_key: str, value: bytes, ttl_s: float) -> None:
        await self._cache.set(replay_key, value, ttl_s)

    async def close(self) -> None:
        return None
