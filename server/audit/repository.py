"""SQL for the audit log."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from datetime import datetime
from typing import Any

import asyncpg

_LOCK = "SELECT pg_advisory_xact_lock(hashtext('audit_log'))"


async def lock_and_last(conn: asyncpg.Connection) -> asyncpg.Record | None:
    """Take the chain's lock for this transaction and return the current head."""
    await conn.execute(_LOCK)
    return await conn.fetchrow("SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1")


async def insert(
    conn: asyncpg.Connection,
    *,
    seq: int,
    at: datetime,
    actor: str,
    action: str,
    target: str,
    details: dict[str, Any],
    prev_hash: bytes,
    hash_: bytes,
    mac: int,
) -> None:
    await conn.execute(
        """INSERT INTO audit_log (seq, at, actor, action, target, details, prev_hash, hash, mac)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)""",
        seq,
        at,
        actor,
        action,
        target,
        details,
        prev_hash,
        hash_,
        mac,
    )


async def iterate(conn: asyncpg.Connection, batch: int = 5000) -> AsyncGenerator[asyncpg.Record, None]:
    async with conn.transaction(isolation="repeatable_read", readonly=True):
        async for row in conn.cursor(
            "SELECT seq, at, actor, action, target, details, prev_hash, hash, mac FROM audit_log ORDER BY seq",
            prefetch=batch,
        ):
            yield row


def _like(text: str) -> str:
    return "%" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


async def search(
    conn: asyncpg.Connection,
    *,
    action: str | None,
    actor: str | None,
    target: str | None,
    text: str | None,
    before: int | None,
    limit: int,
) -> list[asyncpg.Record]:
    """Newest first; exact action, actor or target, and `text` anywhere in action, actor or target."""
    return await conn.fetch(
        """SELECT seq, at, actor, action, target, details FROM audit_log
           WHERE ($1::text IS NULL OR action = $1) AND ($2::text IS NULL OR actor = $2)
             AND ($3::text IS NULL OR target = $3)
             AND ($4::text IS NULL OR action ILIKE $4 OR actor ILIKE $4 OR target ILIKE $4)
             AND ($5::bigint IS NULL OR seq < $5)
           ORDER BY seq DESC LIMIT $6""",
        action,
        actor,
        target,
        None if text is None else _like(text),
        before,
        limit,
    )


async def get(conn: asyncpg.Connection, seq: int) -> asyncpg.Record | None:
    return await conn.fetchrow(
        "SELECT seq, at, actor, action, target, details FROM audit_log WHERE seq = $1", seq
    )


# -- checkpoints -------------------------------------------------------------------------------------------


async def last_checkpoint_size(conn: asyncpg.Connection) -> int:
    size: int = await conn.fetchval("SELECT coalesce(max(size), 0) FROM audit_checkpoints")
    return size


async def insert_checkpoint(
    conn: asyncpg.Connection, *, size: int, head: bytes, signed_at: datetime, key_id: str, signature: bytes
) -> None:
    await conn.execute(
        """INSERT INTO audit_checkpoints (size, head, signed_at, key_id, signature)
           VALUES ($1, $2, $3, $4, $5)""",
        size,
        head,
        signed_at,
        key_id,
        signature,
    )


async def checkpoints_after(conn: asyncpg.Connection, after: int, limit: int) -> list[asyncpg.Record]:
    return await conn.fetch(
        """SELECT size, head, signed_at, key_id, signature FROM audit_checkpoints
           WHERE size > $1 ORDER BY size LIMIT $2""",
        after,
        limit,
    )
