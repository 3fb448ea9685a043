"""One pipelined Redis connection per process for the rate limiters' counting script, on every gateway call.

redis-py spends ~44 µs of CPU per command (its pool, retry and encoder layers; tests/bench/bench_gateway_cpu.py):
here a command is a write and a future, its reply matched by order (Redis answers a connection's commands in the
order they were sent), parsed by hiredis. Every caller shares the one connection, so there is no pool to wait on.

A lost or refused connection fails its callers with redis-py's ConnectionError (RedisCache turns it into
CacheUnavailable, as for every other command) and the next command connects again; an error reply raises what
redis-py raises for it (so LOADING while Redis reloads its data, "max number of clients reached", NOAUTH and
WRONGPASS are ConnectionErrors, and CacheUnavailable too); a command unanswered for
`timeout_s` ends the connection the same way, as redis-py's socket timeout would.
"""

from __future__ import annotations

import asyncio
import collections
from typing import Any

import hiredis
import redis.asyncio.connection
import redis.exceptions
from redis._parsers import BaseParser


class _Connection(asyncio.Protocol):
    def __init__(self, loop: asyncio.AbstractEventLoop, timeout_s: float) -> None:
        self.loop = loop
        self.timeout_s = timeout_s
        self.transport: asyncio.Transport | None = None
        self.reader = hiredis.Reader()
        self.waiting: collections.deque[tuple[asyncio.Future[Any], float]] = collections.deque()
        """Futures of the commands sent and not yet answered, oldest first, with when each was sent."""
        self.lost = False
        self.watch: asyncio.TimerHandle | None = None
        """The timer that ends this connection if its oldest command waits too long (at most one)."""

    @property
    def usable(self) -> bool:
        """Not lost, and not closing either: a transport closes before its loss is reported (a turn of the loop
        later), and writing to it then is silently dropped (asyncio) or raises RuntimeError (uvloop)."""
        return not self.lost and self.transport is not None and not self.transport.is_closing()

    def send(self, command: bytes) -> asyncio.Future[Any]:
        """Write an encoded command and queue the future of its reply, with no await between the two (replies
        are matched by order); a connection that cannot take it raises ConnectionError, and is ended."""
        if not self.usable:
            self.fail(redis.exceptions.ConnectionError("Redis connection lost"))
            raise redis.exceptions.ConnectionError("Redis connection lost")
        assert self.transport is not None
        try:
            self.transport.write(command)
        except Exception as exc:  # uvloop's "handler is closed", an OSError...
            self.fail(redis.exceptions.ConnectionError(f"Redis connection lost: {exc}"))
            raise redis.exceptions.ConnectionError(f"Redis connection lost: {exc}") from exc
        future = self.loop.create_future()
        self.waiting.append((future, self.loop.time()))
        if self.watch is None:
            self.watch = self.loop.call_later(self.timeout_s, self._check)
        return future

    def _check(self) -> None:
        """The timeout, one timer per connection rather than one per command: end the connection when its oldest
        command has waited `timeout_s`, else look again when it will have."""
        self.watch = None
        if self.lost or not self.waiting:
            return
        due = self.waiting[0][1] + self.timeout_s
        if self.loop.time() >= due:
            self.fail(redis.exceptions.TimeoutError(f"Redis did not answer within {self.timeout_s} s"))
        else:
            self.watch = self.loop.call_at(due, self._check)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        try:
            self.reader.feed(data)
            while (reply := self.reader.gets()) is not False:
                if not self.waiting:
                    raise hiredis.ProtocolError("a reply to no command")
                future, _ = self.waiting.popleft()
                if not future.done():
                    future.set_result(reply)
        except hiredis.ProtocolError as exc:  # out of step: no later reply can be trusted to be its caller's
            self.fail(redis.exceptions.ConnectionError(f"Redis protocol error: {exc}"))

    def connection_lost(self, exc: Exception | None) -> None:
        self.fail(redis.exceptions.ConnectionError(f"Redis connection lost: {exc or 'closed by the server'}"))

    def fail(self, error: Exception) -> None:
        """End the connection (idempotent) and fail every command still waiting on it."""
        self.lost = True
        if self.watch is not None:
            self.watch.cancel()
            self.watch = None
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
        """Send one command and return its reply; a Redis error reply raises what redis-py raises for it (its
        ResponseError, NoScriptError for NOSCRIPT, a ConnectionError for LOADING...), a lost connection its
        ConnectionError, no reply within the timeout its TimeoutError."""
        # Encoded before anything is queued: an argument hiredis refuses (None, a bool, a lone surrogate) raises here,
        # where a future queued for a command never sent would take the next command's reply, and so on down.
        command = hiredis.pack_command(args)
        conn = self._conn
        loop = asyncio.get_running_loop()
        if conn is None or not conn.usable or loop is not self._loop:
            conn = await self._connect(loop)
        future = conn.send(command)
        reply = await future
        if isinstance(reply, hiredis.ReplyError):
            # redis-py's own table: NOSCRIPT is NoScriptError; LOADING, "max number of clients reached", NOAUTH and
            # WRONGPASS are ConnectionErrors (so CacheUnavailable, and the rate limiters count in memory meanwhile)
            raise BaseParser.parse_error(str(reply))
        return reply

    async def _connect(self, loop: asyncio.AbstractEventLoop) -> _Connection:
        if self._loop is not loop:  # a new event loop (tests): the old connection belongs to the old one
            self._forget("the event loop changed")
            self._loop = loop
        if self._connecting is None or self._connecting.done():
            self._connecting = loop.create_task(self._open(loop))
        connecting = self._connecting
        try:
            # shielded: one caller giving up must not cancel the connection the others wait for
            conn = await asyncio.shield(connecting)
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if connecting.cancelled() and not (task is not None and task.cancelling()):  # by close()
                raise redis.exceptions.ConnectionError("Redis connection closed") from None
            raise
        if self._connecting is connecting:  # a caller resuming late must not put back an older connection
            self._conn = conn
        # perhaps lost meanwhile: then its send raises ConnectionError, and the next call connects again
        return conn

    async def _open(self, loop: asyncio.AbstractEventLoop) -> _Connection:
        conn: _Connection | None = None

        def new() -> _Connection:
            return _Connection(loop, self._timeout_s)

        try:
            async with asyncio.timeout(self._timeout_s):
                if self._path is not None:
                    _, conn = await loop.create_unix_connection(new, self._path)
                else:
                    _, conn = await loop.create_connection(new, self._host, self._port)
                for command in self._hello:
                    reply = await conn.send(hiredis.pack_command(command))
                    if isinstance(reply, hiredis.ReplyError):
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
        """End the connection, or the opening of one (its callers get ConnectionError)."""
        self._forget("closed")

    def _forget(self, why: str) -> None:
        connecting, conn, self._connecting, self._conn = self._connecting, self._conn, None, None
        try:
            if connecting is not None:
                connecting.cancel()
            if conn is not None:
                conn.fail(redis.exceptions.ConnectionError(f"Redis connection {why}"))
        except RuntimeError:  # on a loop already closed: nothing runs there any more, its sockets go with it
            pass
