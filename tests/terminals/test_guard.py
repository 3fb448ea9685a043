"""One contract for both replay guards: Redis (many workers) and the in-process cache (`yima dev`)."""

from __future__ import annotations

import secrets

import pytest

from server.cache import MemoryCache, RedisCache
from server.terminals.scans.guard import CacheScanGuard, RedisScanGuard, ScanGuard
from tests.conftest import REDIS_URL


@pytest.fixture(params=["redis", "memory"])
async def guard_and_cache(request):
    namespace = f"yimaguard-{secrets.token_hex(4)}:"
    if request.param == "redis":
        cache = RedisCache(REDIS_URL, namespace=namespace)
        guard: ScanGuard = RedisScanGuard(REDIS_URL, namespace)
    else:
        cache = MemoryCache()
        guard = CacheScanGuard(cache)
    yield guard, cache
    await guard.close()
    await cache.close()


async def test_first_claim_wins_and_later_ones_read_it(guard_and_cache):
    guard, _ = guard_and_cache
    assert await guard.claim("scan:k", b"accept||1", 60) == (None, None)
    assert await guard.claim("scan:k", b"accept||2", 60) == (b"accept||1", None)
    assert await guard.claim("scan:other", b"x", 60) == (None, None)


async def test_the_revocation_mark_is_read_in_the_same_call(guard_and_cache):
    guard, cache = guard_and_cache
    assert await guard.claim("scan:a", b"v", 60, "ankang:generation:7") == (None, None)
    await cache.set("ankang:generation:7", b"2", 60)  # written by the revocation service through the cache
    assert await guard.claim("scan:b", b"v", 60, "ankang:generation:7") == (None, b"2")
    assert await guard.claim(None, b"v", 60, "ankang:generation:7") == (None, b"2")


async def test_concurrent_claims_of_one_code_have_one_winner(guard_and_cache):
    """Claims from concurrent scans may travel in one batch; still exactly one stores its value, and every
    other one reads that value back."""
    import asyncio

    guard, _ = guard_and_cache
    results = await asyncio.gather(
        *(guard.claim("scan:same", f"v{i}".encode(), 60, "ankang:generation:9") for i in range(50)),
        *(guard.claim(f"scan:distinct-{i}", b"x", 60) for i in range(20)),
    )
    same, distinct = results[:50], results[50:]
    winners = [i for i, (earlier, _) in enumerate(same) if earlier is None]
    assert len(winners) == 1
    assert {earlier for earlier, _ in same if earlier is not None} == {f"v{winners[0]}".encode()}
    assert distinct == [(None, None)] * 20


async def test_a_mixed_batch_answers_each_scan_with_its_own_claim_and_mark(guard_and_cache):
    """Claims with and without marks, marks without claims, set and unset marks, all in one batch: every scan
    gets the answer for its own keys."""
    import asyncio

    guard, cache = guard_and_cache
    await cache.set("ankang:generation:1", b"5", 60)
    await guard.claim("scan:seen", b"first", 60)
    calls = []
    for i in range(30):
        kind = i % 4
        if kind == 0:
            calls.append((f"scan:new-{i}", b"v", "ankang:generation:1", (None, b"5")))
        elif kind == 1:
            calls.append(("scan:seen", b"later", None, (b"first", None)))
        elif kind == 2:
            calls.append((None, b"v", "ankang:generation:1", (None, b"5")))
        else:
            calls.append((f"scan:new-{i}", b"v", f"ankang:generation:unset-{i}", (None, None)))
    answers = await asyncio.gather(*(guard.claim(key, value, 60, mark) for key, value, mark, _ in calls))
    assert answers == [expected for *_, expected in calls]
