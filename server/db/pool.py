"""The asyncpg pool with acquire and command timeouts, and the request-scoped transaction."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg

from server.errors import Unavailable
from server.settings import Settings


async def _init_connection(conn: asyncpg.Connection) -> None:
    # jsonb in and out as Python objects; msgspec would be faster but asyncpg wants str codecs.
    import json

    await conn.set_type_codec("jsonb", encoder=json.dumps, decoder=json.loads, schema="pg_catalog")


async def _keep_session(conn: asyncpg.Connection) -> None:
    return None


async def create_pool(settings: Settings, dsn: str | None = None) -> asyncpg.Pool:
    return await asyncpg.create_pool(
        dsn or settings.database_url,
        min_size=settings.db_pool_min,
        max_size=settings.db_pool_max,
        command_timeout=settings.db_command_timeout_s,
        init=_init_connection,
        # No reset statement on release: it is one more round trip per acquire (~10% of a sandboxed find's server
        # CPU, docs/benchmarks.md) and resets what nothing here leaves behind: no session SETs, LISTEN or held
        # cursors, and the one session advisory lock (replay-claim pruning, terminals/scans/claims.py) is released
        # by its holder, which closes the connection when it cannot. asyncpg still rolls back a transaction left
        # open before the pool takes it back.
        reset=_keep_session,
        server_settings={
            "application_name": "yima",
            "timezone": "UTC",
            **({"role": settings.db_role} if settings.db_role else {}),
        },
    )


class Database:
    """Owns the pool; hands out connections with a bounded wait so overload answers 503, not a hang."""

    def __init__(self, pool: asyncpg.Pool, acquire_timeout_s: float) -> None:
        self.pool = pool
        self.acquire_timeout_s = acquire_timeout_s

    @asynccontextmanager
    async def connection(self) -> AsyncIterator[asyncpg.Connection]:
        try:
            conn = await self.pool.acquire(timeout=self.acquire_timeout_s)
        except TimeoutError:
            raise Unavailable("The database is busy; try again shortly", code="service.db_busy") from None
        try:
            yield conn
        finally:
            await self.pool.release(conn)

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[asyncpg.Connection]:
        async with self.connection() as conn, conn.transaction():
            yield conn

    async def close(self) -> None:
        await self.pool.close()
