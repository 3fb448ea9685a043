"""One pipelined Redis connection per process for the rate limiters' counting script, on every gateway call.

redis-py spends ~44 µs of CPU per command (its pool, retry and encoder layers; tests/bench/bench_gateway_cpu.py):
here a command is a write and a future, its reply matched by order (Redis answers a connection's commands in the
order they were sent), parsed by hiredis. Every caller shares the one connection, so there is no pool to wait on.

A lost or refused connection fails its callers with redis-py's ConnectionError (RedisCache turns it into
CacheUnavailable, as for every other command) and the next command connects again; a command unanswered for
`timeout_s` ends the connection the same way, as redis-py's socket timeout would.
"""

from __future__ import annotations

import asyncio
import collections
from typing import Any

import hiredis
import redis.asyncio.connection
import redis.exceptions


class _Connection(asyncio.Protocol):
    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.reader = hiredis.Reader()
        self.waiting: collections.deque[tuple[asyncio.Future[Any], float]] = collections.deque()
        """Futures of the commands sent and not yet answered, oldest first, with when each was sent."""
        self.lost = False
        self.watch: asyncio.TimerHandle | None = None
        """The timer that ends this connection if its oldest command waits too long (at most one)."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.reader.feed(data)
        while (reply := self.reader.gets()) is not False:
            future, _ = self.waiting.popleft()
            if not future.done():
                future.set_result(reply)

    def connection_lost(self, exc: Exception | None) -> None:
        self.fail(redis.exceptions.ConnectionError(f"Redis connection lost: {exc or 'closed by the server'}"))

    def fail(self, error: Exception) -> None:
        self.lost = True
        if self.watch is not None:
            self.watch.cancel()
        if self.transport is not None:
            self.transport.abort()
        while self.waiting:
            future, _ = self.waiting.popleft()
            if not future.done():
                future.set_exception(error)


class PipelinedCommands:
    """Commands on one shared connection (opened on first use, and again after a loss); see the module."""

    def __init__(self, url: str, *, timeout_s: float = 5.0) -> None:
        options = redis.asyncio.connection.parse_url(url)
        if "connection_class" in options and "path" not in options:
            raise ValueError("only redis:// and unix:// URLs (TLS goes through redis-py)")
        self._path: str | None = options.get("path")
        self._host: str = options.get("host", "localhost")
        self._port: int = options.get("port", 6379)
        self._hello: list[tuple[Any, ...]] = []
        """What a new connection sends first: AUTH and SELECT, as the URL asks."""
        if options.get("password"):
            user = (options["username"],) if options.get("username") else ()
            self._hello.append(("AUTH", *user, options["password"]))
        if options.get("db"):
            self._hello.append(("SELECT", options["db"]))
        self._timeout_s = timeout_s
        self._conn: _Connection | None = None
        self._connecting: asyncio.Task[_Connection] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    async def execute_command(self, *args: Any) -> Any:
        """Send one command and return its reply; a Redis error reply raises redis-py's ResponseError (NoScriptError
        for NOSCRIPT), a lost connection its ConnectionError, no reply within the timeout its TimeoutError."""
        # Encoded before anything is queued: an argument hiredis refuses (None, a bool, a lone surrogate) raises here,
        # where a future queued for a command never sent would take the next command's reply, and so on down.
        command = hiredis.pack_command(args)
        conn = self._conn
        loop = asyncio.get_running_loop()
        if conn is None or conn.lost or loop is not self._loop:
            conn = await self._connect(loop)
        future = loop.create_future()
        assert conn.transport is not None
        conn.transport.write(command)
        conn.waiting.append((future, loop.time()))
        if conn.watch is None:
            conn.watch = loop.call_later(self._timeout_s, self._check, conn)
        reply = await future
        if isinstance(reply, hiredis.ReplyError):
            message = str(reply)
            if message.startswith("NOSCRIPT"):
                raise redis.exceptions.NoScriptError(message)
            raise redis.exceptions.ResponseError(message)
        return reply

    def _check(self, conn: _Connection) -> None:
        """The timeout, one timer per connection rather than one per command: end a connection whose oldest
        command has waited `timeout_s`, else look again when it will have."""
        conn.watch = None
        if conn.lost or not conn.waiting:
            return
        assert self._loop is not None
        due = conn.waiting[0][1] + self._timeout_s
        if self._loop.time() >= due:
            conn.fail(redis.exceptions.TimeoutError(f"Redis did not answer within {self._timeout_s} s"))
        else:
            conn.watch = self._loop.call_at(due, self._check, conn)

    async def _connect(self, loop: asyncio.AbstractEventLoop) -> _Connection:
        if self._loop is not loop:  # a new event loop (tests): the old connection belongs to the old one
            self._connecting, self._conn, self._loop = None, None, loop
        if self._connecting is None or self._connecting.done():
            self._connecting = loop.create_task(self._open(loop))
        # shielded: one caller giving up must not cancel the connection the others wait for
        self._conn = await asyncio.shield(self._connecting)
        return self._conn

    async def _open(self, loop: asyncio.AbstractEventLoop) -> _Connection:
        conn: _Connection | None = None
        try:
            async with asyncio.timeout(self._timeout_s):
                if self._path is not None:
                    _, conn = await loop.create_unix_connection(_Connection, self._path)
                else:
                    _, conn = await loop.create_connection(_Connection, self._host, self._port)
                for command in self._hello:
                    future = loop.create_future()
                    conn.waiting.append((future, loop.time()))
                    assert conn.transport is not None
                    conn.transport.write(hiredis.pack_command(command))
                    if isinstance(reply := await future, hiredis.ReplyError):
                        raise redis.exceptions.ConnectionError(f"Redis refused {command[0]}: {reply}")
        except BaseException as exc:
            if conn is not None:
                conn.fail(redis.exceptions.ConnectionError("Redis connection abandoned"))
            if isinstance(exc, TimeoutError):
                raise redis.exceptions.TimeoutError(
                    f"Redis did not accept within {self._timeout_s} s"
                ) from None
            if isinstance(exc, OSError):
                raise redis.exceptions.ConnectionError(f"Redis unreachable: {exc}") from exc
            raise
        return conn

    def close(self) -> None:
        if self._conn is not None:
            self._conn.fail(redis.exceptions.ConnectionError("closed"))
            self._conn = None
