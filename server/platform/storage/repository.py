"""All SQL of per-app storage: documents with versions, bounded counters, prefix listing, usage accounting.

Every statement is keyed by the app id the sandbox host vouches for, never by anything the app sends, so one
app can never name another's rows.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import asyncpg


async def get(conn: asyncpg.Connection, app_id: str, collection: str, key: str) -> asyncpg.Record | None:
    return await conn.fetchrow(
        "SELECT value, version FROM miniapp_documents WHERE app_id = $1 AND collection = $2 AND key = $3",
        app_id,
        collection,
        key,
    )


async def current(conn: asyncpg.Connection, app_id: str, collection: str, key: str) -> asyncpg.Record | None:
    return await conn.fetchrow(
        "SELECT version, size_bytes FROM miniapp_documents WHERE app_id = $1 AND collection = $2 AND key = $3"
        " FOR UPDATE",
        app_id,
        collection,
        key,
    )


async def insert(
    conn: asyncpg.Connection, app_id: str, collection: str, key: str, value: Any, size: int, at: dt.datetime
) -> bool:
    done = await conn.fetchval(
        "INSERT INTO miniapp_documents (app_id, collection, key, value, version, size_bytes, updated_at)"
        " VALUES ($1, $2, $3, $4, 1, $5, $6) ON CONFLICT DO NOTHING RETURNING version",
        app_id,
        collection,
        key,
        value,
        size,
        at,
    )
    return done is not None


async def update(
    conn: asyncpg.Connection,
    app_id: str,
    collection: str,
    key: str,
    value: Any,
    size: int,
    at: dt.datetime,
    expected: int,
) -> int | None:
    """Compare-and-set: write only if the stored version is `expected`; the new version, or None."""
    return await conn.fetchval(  # type: ignore[no-any-return]
        "UPDATE miniapp_documents SET value = $4, size_bytes = $5, updated_at = $6, version = version + 1"
        " WHERE app_id = $1 AND collection = $2 AND key = $3 AND version = $7 RETURNING version",
        app_id,
        collection,
        key,
        value,
        size,
        at,
        expected,
    )


async def delete(conn: asyncpg.Connection, app_id: str, collection: str, key: str) -> None:
    await conn.execute(
        "DELETE FROM miniapp_documents WHERE app_id = $1 AND collection = $2 AND key = $3",
        app_id,
        collection,
        key,
    )


async def list_prefix(
    conn: asyncpg.Connection, app_id: str, collection: str, prefix: str, after: str, limit: int
) -> list[asyncpg.Record]:
    return await conn.fetch(
        "SELECT key, value, version FROM miniapp_documents WHERE app_id = $1 AND collection = $2"
        " AND key > $4 AND key >= $3 AND starts_with(key, $3) ORDER BY key LIMIT $5",
        app_id,
        collection,
        prefix,
        after,
        limit,
    )


async def account_usage(conn: asyncpg.Connection, app_id: str, keys: int, size: int) -> bool:
    """Add to the app's usage unless that would pass its quota (shrinking always succeeds)."""
    # the app's ctx.db commits count in miniapp_usage_shards (migrations 0101, 0170): the quota covers both
    done = await conn.fetchval(
        "UPDATE miniapps SET storage_keys = storage_keys + $2, storage_bytes = storage_bytes + $3"
        " FROM miniapp_db_usage($1) db"
        " WHERE app_id = $1 AND (($2 <= 0 AND $3 <= 0) OR (storage_keys + db.keys + $2 <= storage_max_keys"
        " AND storage_bytes + db.bytes + $3 <= storage_max_bytes))"
        " RETURNING app_id",
        app_id,
        keys,
        size,
    )
    return done is not None


async def ensure_counter(
    conn: asyncpg.Connection, app_id: str, collection: str, key: str, at: dt.datetime
) -> bool:
    """Create the counter at 0 unless it exists; True when this call created it."""
    created = await conn.fetchval(
        "INSERT INTO miniapp_counters (app_id, collection, key, value, updated_at) VALUES ($1, $2, $3, 0, $4)"
        " ON CONFLICT DO NOTHING RETURNING true",
        app_id,
        collection,
        key,
        at,
    )
    return created is not None


async def add_bounded(
    conn: asyncpg.Connection,
    app_id: str,
    collection: str,
    key: str,
    amount: int,
    lower: int | None,
    upper: int | None,
    at: dt.datetime,
) -> int | None:
    """Add within bounds in one statement; the new value, or None when it would leave [lower, upper].

    Concurrent increments queue on the row lock and PostgreSQL re-checks the bound against the value each one
    finally sees, so capacity is never oversold."""
    return await conn.fetchval(  # type: ignore[no-any-return]
        "UPDATE miniapp_counters SET value = value + $4, updated_at = $7"
        " WHERE app_id = $1 AND collection = $2 AND key = $3"
        " AND ($5::bigint IS NULL OR value + $4 >= $5) AND ($6::bigint IS NULL OR value + $4 <= $6)"
        " RETURNING value",
        app_id,
        collection,
        key,
        amount,
        lower,
        upper,
        at,
    )


async def counter(conn: asyncpg.Connection, app_id: str, collection: str, key: str) -> int:
    value = await conn.fetchval(
        "SELECT value FROM miniapp_counters WHERE app_id = $1 AND collection = $2 AND key = $3",
        app_id,
        collection,
        key,
    )
    return int(value or 0)
