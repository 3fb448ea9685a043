"""The replay guard shared by every worker, with the revocation mark read in the same round trip.

`RedisScanGuard` runs, per scan, `SET key value NX GET PX ttl` (claim, or read the earlier claim) and, for our own
codes, `GET` of the resident's code-generation mark. The claims of concurrent scans travel together as one call of
a small server-side script (`_CLAIMS`): one round trip and one command for many scans. (A pipeline of the same
commands cost redis-py's per-command packing and parsing in Python for every scan, ~10% of a scan worker.)
`CacheScanGuard` does the same over the in-process cache of a single-worker `yima dev`.

Codes spent once anywhere never come here for their replay check: their one claim is durable, in the scan
record's own statement (scan_replay_claims; docs/scan.md), so such a scan only reads its mark here. A fast path in
Redis in front of that claim (a read before, a write after commit) cost a second script call per scan, ~20% of the
scan path's instructions, to answer early the replays the claiming statement refuses anyway (docs/benchmarks.md).
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

# KEYS: the batch's replay keys, then its mark keys. ARGV: for each replay key its value and TTL (ms). Answers one
# entry per key, in order: the earlier value or mark, or 0 when there was none (a Lua table cannot hold nil).
# SET ... NX GET needs Redis 7.
_CLAIMS = """
local out = {}
local claims = (#ARGV) / 2
for i = 1, #KEYS do
    local found
    if i <= claims then
        found = redis.call('SET', KEYS[i], ARGV[2 * i - 1], 'NX', 'GET', 'PX', ARGV[2 * i])
    else
        found = redis.call('GET', KEYS[i])
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
    ) -> tuple[bytes | None, bytes | None]:
        """Store value under replay_key unless present (no replay_key: only read the mark). Returns (the earlier
        value, or None if this call stored it; the value under mark_key, or None)."""

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
            tuple[str | None, bytes, int, str | None, asyncio.Future[tuple[bytes | None, bytes | None]]]
        ] = []
        self._sender: asyncio.Task[None] | None = None
        self._claims = self._redis.register_script(_CLAIMS)

    async def claim(
        self,
        replay_key: str | None,
        value: bytes,
        ttl_s: float,
        mark_key: str | None = None,
    ) -> tuple[bytes | None, bytes | None]:
        if replay_key is None and mark_key is None:
            return None, None
        future: asyncio.Future[tuple[bytes | None, bytes | None]] = asyncio.get_running_loop().create_future()
        self._queue.append((replay_key, value, max(1, int(ttl_s * 1000)), mark_key, future))
        if self._sender is None or self._sender.done():
            self._sender = asyncio.create_task(self._send())
        return await future

    async def _send(self) -> None:
        while self._queue:
            batch, self._queue = self._queue[: self._max_batch], self._queue[self._max_batch :]
            ns = self._ns
            keys: list[str] = [ns + replay_key for replay_key, *_ in batch if replay_key is not None]
            args: list[bytes | int] = []
            for replay_key, value, px, _, _ in batch:
                if replay_key is not None:
                    args += (value, px)
            keys += [ns + mark_key for *_, mark_key, _ in batch if mark_key is not None]
            try:
                found = iter(await self._claims(keys=keys, args=args))
            except Exception as exc:
                for *_, future in batch:
                    if not future.done():
                        future.set_exception(exc)
                continue
            earlier = [_found(next(found)) if replay_key is not None else None for replay_key, *_ in batch]
            for (*_, mark_key, future), before in zip(batch, earlier, strict=True):
                mark = _found(next(found)) if mark_key is not None else None
                if not future.done():
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
    ) -> tuple[bytes | None, bytes | None]:
        earlier = None
        if replay_key is not None and not await self._cache.set_if_absent(replay_key, value, ttl_s):
            earlier = await self._cache.get(replay_key) or value
        mark = await self._cache.get(mark_key) if mark_key is not None else None
        return earlier, mark

    async def close(self) -> None:
        return None
