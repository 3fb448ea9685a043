"""SQL of the access guard: ended sessions (the durable record it falls back on)."""

from __future__ import annotations

from datetime import datetime

import asyncpg


async def record_end(conn: asyncpg.Connection, session_id: str, until: datetime) -> None:
    await conn.execute(
        """INSERT INTO ended_sessions (session_id, ended_until) VALUES ($1, $2)
           ON CONFLICT (session_id) DO UPDATE SET ended_until = GREATEST(ended_sessions.ended_until, $2)""",
        session_id,
        until,
    )


async def ended_until(conn: asyncpg.Connection, session_id: str, now: datetime) -> datetime | None:
    until: datetime | None = await conn.fetchval(
        "SELECT ended_until FROM ended_sessions WHERE session_id = $1 AND ended_until > $2", session_id, now
    )
    return until


async def still_ended(conn: asyncpg.Connection, now: datetime) -> list[asyncpg.Record]:
    """Every session still ended at `now`, after dropping those whose tokens have all expired."""
    await conn.execute("DELETE FROM ended_sessions WHERE ended_until <= $1", now)
    return await conn.fetch("SELECT session_id, ended_until FROM ended_sessions")
