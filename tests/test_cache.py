"""One contract, run over both cache backends: Redis (shared by workers) and in-process (single worker)."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Callable

import hiredis
import pytest
import redis.exceptions

from server.cache import Cache, MemoryCache, RedisCache
from server.cache._pipelined import PipelinedCommands
from server.errors import CacheUnavailable
from tests.conftest import REDIS_URL
from tests.event_loops import LOOPS


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(params=["memory", "redis"])
async def cache(request):
    if request.param == "memory":
        backend: Cache = MemoryCache()
    else:
        backend = RedisCache(REDIS_URL, namespace=f"yimatest-{secrets.token_hex(4)}:")
    yield backend
    await backend.close()


async def test_set_if_absent_is_atomic_under_contention(cache):
    results = await asyncio.gather(*(cache.set_if_absent("replay:x", b"w", 30) for _ in range(50)))
    assert results.count(True) == 1
    assert await cache.get("replay:x") == b"w"


async def test_counters_start_with_expiry_and_count(cache):
    values = await asyncio.gather(*(cache.incr("rl:a", 60) for _ in range(20)))
    assert sorted(values) == list(range(1, 21))
    ttl = await cache.ttl("rl:a")
    assert ttl is not None and 0 < ttl <= 60
    assert await cache.incr("rl:a", 60, amount=5) == 25


async def test_several_counters_count_in_one_call(cache):
    assert await cache.incr_many(["m1", "m2"], 60) == [1, 1]
    assert await cache.incr_many(["m1", "m2", "m3"], 60) == [2, 2, 1]
    assert await cache.incr("m2", 60) == 3
    ttl = await cache.ttl("m3")
    assert ttl is not None and 0 < ttl <= 60


async def test_expiry(cache):
    await cache.set("k", b"v", 0.05)
    assert await cache.get("k") == b"v"
    # Expiry in real time is what Redis offers; the memory backend gets the same deadline.
    for _ in range(100):
        if await cache.get("k") is None:
            break
        await asyncio.sleep(0.01)
    assert await cache.get("k") is None
    assert await cache.ttl("k") is None
    assert await cache.set_if_absent("k", b"again", 10) is True


async def test_delete(cache):
    await cache.set("d", b"1", 10)
    await cache.delete("d")
    assert await cache.get("d") is None


async def test_publish_reaches_subscribers(cache):
    async with cache.subscribe("events") as messages:
        await cache.publish("events", b"hello")
        await cache.publish("events", b"world")
        got = [await asyncio.wait_for(anext(messages), 2), await asyncio.wait_for(anext(messages), 2)]
    assert got == [b"hello", b"world"]


async def test_ping(cache):
    await cache.ping()


async def test_memory_cache_uses_the_injected_clock():
    clock = FakeClock()
    cache = MemoryCache(clock=clock)
    await cache.set_if_absent("a", b"1", 10)
    clock.now += 9.9
    assert await cache.get("a") == b"1"
    clock.now += 0.2
    assert await cache.get("a") is None
    assert await cache.incr("c", 5) == 1
    clock.now += 6
    assert await cache.incr("c", 5) == 1  # a new window after expiry


async def test_cancelling_a_subscriber_ends_it(cache):
    """A worker shutting down cancels its listeners; none may keep running (the shutdown would hang)."""

    async def listen() -> None:
        async with cache.subscribe("stop") as messages:
            async for _ in messages:
                pass

    for delay in (0.0, 0.05, 0.3):
        task = asyncio.create_task(listen())
        await asyncio.sleep(delay)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await asyncio.wait_for(task, 3)


async def test_follow_resubscribes_after_a_lost_subscription():
    """`follow` keeps a listener alive through a failed subscription and reloads each time it is back."""
    from contextlib import asynccontextmanager

    from server.cache import follow

    class FlakyCache(MemoryCache):
        failures = 1

        def subscribe(self, channel):
            if self.failures:
                self.failures -= 1

                @asynccontextmanager
                async def broken():
                    raise ConnectionError("redis went away")
                    yield  # pragma: no cover

                return broken()
            return super().subscribe(channel)

    cache = FlakyCache()
    got: list[bytes] = []
    events: list[str] = []
    subscribed = asyncio.Event()

    async def on_subscribed() -> None:
        events.append("subscribed")
        subscribed.set()

    task = asyncio.create_task(
        follow(
            cache,
            "ch",
            lambda m: _append(got, m),
            on_subscribed=on_subscribed,
            on_lost=lambda: events.append("lost"),
        )
    )
    await asyncio.wait_for(subscribed.wait(), 5)
    await cache.publish("ch", b"hello")
    for _ in range(100):
        if got:
            break
        await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert events[:2] == ["lost", "subscribed"]
    assert got == [b"hello"]


async def _append(items: list[bytes], message: bytes) -> None:
    items.append(message)


async def test_redis_counters_survive_a_flushed_script_cache():
    """Counters run as one server-side script called by its digest; after a Redis restart (or SCRIPT FLUSH)
    the script is gone and the next count loads it again: no hit is lost or counted twice."""
    cache = RedisCache(REDIS_URL, namespace=f"yimatest-{secrets.token_hex(4)}:")
    try:
        assert await cache.incr_many(["f1", "f2"], 60) == [1, 1]
        await cache._redis.script_flush()
        assert await cache.incr_many(["f1", "f2"], 60) == [2, 2]
        await cache._redis.script_flush()
        assert await cache.incr("f1", 60, amount=3) == 5
        assert await cache.incr("f2", 60) == 3
        ttl = await cache.ttl("f1")
        assert ttl is not None and 0 < ttl <= 60
    finally:
        await cache.close()


async def test_concurrent_counts_each_get_their_own_answer(cache):
    """Counting shares one pipelined Redis connection per process: each of many hits sent at once is answered
    with its own count, none twice and none lost."""
    counts = await asyncio.gather(*(cache.incr_many(["burst", f"own{i}"], 60) for i in range(200)))
    assert sorted(first for first, _ in counts) == list(range(1, 201))
    assert all(own == 1 for _, own in counts)


async def test_redis_counting_reconnects_after_its_connection_is_killed():
    """The counting connection dropped by Redis (CLIENT KILL, as a restart or a network cut does): callers waiting
    on it get CacheUnavailable (the rate limiter then counts in memory), and the next hit connects again."""
    cache = RedisCache(REDIS_URL, namespace=f"yimatest-{secrets.token_hex(4)}:")
    try:
        assert await cache.incr_many(["k"], 60) == [1]
        counting = cache._counting
        assert isinstance(counting, PipelinedCommands)
        own_id = await counting.execute_command("CLIENT", "ID")
        waiting = asyncio.ensure_future(counting.execute_command("BLPOP", "never-pushed", 0))
        await cache._redis.execute_command("CLIENT", "KILL", "ID", own_id)
        with pytest.raises(redis.exceptions.ConnectionError):
            await waiting
        assert await cache.incr_many(["k"], 60) == [2]
        assert await counting.execute_command("CLIENT", "ID") != own_id
    finally:
        await cache.close()


async def test_redis_counting_gives_up_on_a_server_that_never_answers():
    """A Redis that accepts but never answers (hung, or a black hole): the hit fails within the timeout as
    CacheUnavailable, rather than holding the gateway call for ever."""
    silent = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    port = silent.sockets[0].getsockname()[1]
    counting = PipelinedCommands(f"redis://127.0.0.1:{port}/0", timeout_s=0.2)
    try:
        with pytest.raises(redis.exceptions.TimeoutError):
            await asyncio.wait_for(counting.execute_command("PING"), 5)
    finally:
        counting.close()
        silent.close()


async def test_redis_counting_on_a_closed_port_is_cache_unavailable():
    cache = RedisCache("redis://127.0.0.1:1/0")
    try:
        with pytest.raises(CacheUnavailable):
            await cache.incr_many(["k"], 60)
    finally:
        await cache.close()


async def _fake_redis(answer: Callable[[list[bytes]], bytes]) -> tuple[asyncio.Server, str]:
    """A fake Redis answering each command with `answer(command)` (raw RESP); the server and its URL."""

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        parser = hiredis.Reader()
        while data := await reader.read(65536):
            parser.feed(data)
            while (command := parser.gets()) is not False:
                writer.write(answer(command))

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    return server, f"redis://127.0.0.1:{server.sockets[0].getsockname()[1]}/0"


def _echo_last(command: list[bytes]) -> bytes:
    return b"$%d\r\n%s\r\n" % (len(command[-1]), command[-1])


async def test_a_command_that_cannot_be_encoded_does_not_shift_later_replies():
    """A command refused before it is sent (an argument Redis cannot take) fails alone: the commands after it
    still get their own replies, not each the one before's (which would count one client's quota for another)."""
    server, url = await _fake_redis(_echo_last)
    counting = PipelinedCommands(url, timeout_s=2)
    try:
        assert await counting.execute_command("ECHO", "first") == b"first"
        for bad in (None, True, "\ud800"):
            with pytest.raises((TypeError, ValueError)):
                await counting.execute_command("ECHO", bad)
        assert await asyncio.wait_for(counting.execute_command("ECHO", "a"), 5) == b"a"
        assert await asyncio.wait_for(counting.execute_command("ECHO", "b"), 5) == b"b"
    finally:
        counting.close()
        server.close()


@pytest.mark.parametrize("loop_name", list(LOOPS))
@pytest.mark.parametrize("reported", [False, True], ids=["closing", "lost"])
def test_a_connection_lost_as_it_opens_fails_its_caller_in_time(monkeypatch, loop_name, reported):
    """The counting connection dropped just as it is handed over (closing, or its loss already reported): the
    caller gets CacheUnavailable within the timeout, on either event loop the server may run (a hang on asyncio,
    a 500 from uvloop's "handler is closed" otherwise), and the next count connects again."""
    opened = []
    real_open = PipelinedCommands._open

    async def open_then_lose(self, loop):
        conn = await real_open(self, loop)
        opened.append(conn)
        if len(opened) == 1:
            conn.transport.abort()
            if reported:
                for _ in range(10):  # the loss is reported a turn or two of the loop later
                    await asyncio.sleep(0)
                assert conn.lost
        return conn

    monkeypatch.setattr(PipelinedCommands, "_open", open_then_lose)

    async def scenario() -> None:
        cache = RedisCache(REDIS_URL, namespace=f"yimatest-{secrets.token_hex(4)}:")
        assert isinstance(cache._counting, PipelinedCommands)
        cache._counting._timeout_s = 1
        try:
            with pytest.raises(CacheUnavailable):
                await asyncio.wait_for(cache.incr_many(["k"], 60), 3)
            assert await asyncio.wait_for(cache.incr_many(["k"], 60), 3) == [1]
            assert len(opened) == 2
        finally:
            await cache.close()

    with asyncio.Runner(loop_factory=LOOPS[loop_name]) as runner:
        runner.run(scenario())


@pytest.mark.parametrize(
    "error",
    [
        b"LOADING Redis is loading the dataset in memory",
        b"ERR max number of clients reached",
        b"NOAUTH Authentication required.",
        b"WRONGPASS invalid username-password pair or user is disabled.",
    ],
)
async def test_redis_busy_or_refusing_is_cache_unavailable_for_counting(error):
    """Redis reloading its data after a restart (or full, or asking for a password) answers every command with
    an error: counting then fails as CacheUnavailable, like through redis-py (the rate limiters count in memory
    meanwhile), not as a plain error reply (a 500 for every call)."""
    server, url = await _fake_redis(lambda command: b"-" + error + b"\r\n")
    cache = RedisCache(url)
    try:
        with pytest.raises(CacheUnavailable):
            await asyncio.wait_for(cache.incr_many(["k"], 60), 5)
    finally:
        await cache.close()
        server.close()


async def test_other_error_replies_stay_errors():
    server, url = await _fake_redis(
        lambda command: b"-WRONGTYPE Operation against a key holding the wrong kind\r\n"
    )
    counting = PipelinedCommands(url, timeout_s=2)
    try:
        with pytest.raises(redis.exceptions.ResponseError) as raised:
            await counting.execute_command("INCR", "k")
        assert not isinstance(raised.value, redis.exceptions.ConnectionError)
    finally:
        counting.close()
        server.close()


async def test_closing_while_connecting_fails_the_callers_and_the_connection():
    """close() (the server shutting down) while a connection is being opened (here, its AUTH unanswered): the
    caller gets ConnectionError at once, not after the timeout, and the half-open connection is closed."""
    accepted: list[asyncio.StreamReader] = []
    connected = asyncio.Event()

    def accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted.append(reader)
        connected.set()

    silent = await asyncio.start_server(accept, "127.0.0.1", 0)
    port = silent.sockets[0].getsockname()[1]
    counting = PipelinedCommands(f"redis://:secret@127.0.0.1:{port}/0", timeout_s=30)
    try:
        waiting = asyncio.ensure_future(counting.execute_command("PING"))
        async with asyncio.timeout(5):
            await connected.wait()
            counting.close()
            with pytest.raises(redis.exceptions.ConnectionError):
                await waiting
            await accepted[0].read()  # EOF: the client closed its end
    finally:
        silent.close()


def test_a_new_event_loop_closes_the_old_loops_connection():
    """The same PipelinedCommands used from a second event loop (tests, a restarted loop): the first loop's
    connection is closed rather than left open until the process ends."""
    counting = PipelinedCommands(REDIS_URL)
    old, new = asyncio.new_event_loop(), asyncio.new_event_loop()
    try:
        old_id = old.run_until_complete(counting.execute_command("CLIENT", "ID"))
        new.run_until_complete(counting.execute_command("PING"))
        old.run_until_complete(asyncio.sleep(0.05))  # the old loop's turn to close what it was asked to

        async def client_ids() -> list[int]:
            clients = await counting.execute_command("CLIENT", "LIST")
            return [int(field[3:]) for field in clients.split() if field.startswith(b"id=")]

        assert old_id not in new.run_until_complete(client_ids())
    finally:
        counting.close()
        new.run_until_complete(asyncio.sleep(0.05))
        old.close()
        new.close()
