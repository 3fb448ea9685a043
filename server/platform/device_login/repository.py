"""All SQL of the developer device login: pending sign-ins, their confirmation and the token they handed out."""

from __future__ import annotations

import datetime as dt

import asyncpg


async def purge_expired(conn: asyncpg.Connection, before: dt.datetime) -> None:
    await conn.execute("DELETE FROM developer_device_logins WHERE expires_at < $1", before)


async def insert(
    conn: asyncpg.Connection,
    *,
    device_code_hash: bytes,
    user_code: str,
    at: dt.datetime,
    expires_at: dt.datetime,
    interval_s: int,
) -> int | None:
    """The new sign-in's id, or None when a pending sign-in already shows this user code."""
    return await conn.fetchval(  # type: ignore[no-any-return]
        "INSERT INTO developer_device_logins (device_code_hash, user_code, created_at, expires_at, interval_s)"
        " VALUES ($1, $2, $3, $4, $5)"
        " ON CONFLICT (user_code) WHERE confirmed_at IS NULL DO NOTHING RETURNING id",
        device_code_hash,
        user_code,
        at,
        expires_at,
        interval_s,
    )


async def pending_by_user_code(conn: asyncpg.Connection, user_code: str) -> asyncpg.Record | None:
    return await conn.fetchrow(
        "SELECT id, expires_at FROM developer_device_logins WHERE user_code = $1 AND confirmed_at IS NULL"
        " FOR UPDATE",
        user_code,
    )


async def confirm(conn: asyncpg.Connection, login_id: int, account_id: int, at: dt.datetime) -> None:
    await conn.execute(
        "UPDATE developer_device_logins SET account_id = $2, confirmed_at = $3 WHERE id = $1",
        login_id,
        account_id,
        at,
    )


async def by_device_code(conn: asyncpg.Connection, device_code_hash: bytes) -> asyncpg.Record | None:
    return await conn.fetchrow(
        "SELECT id, expires_at, interval_s, polled_at, account_id, token_id FROM developer_device_logins"
        " WHERE device_code_hash = $1 FOR UPDATE",
        device_code_hash,
    )


async def polled(conn: asyncpg.Connection, login_id: int, at: dt.datetime, interval_s: int) -> None:
    await conn.execute(
        "UPDATE developer_device_logins SET polled_at = $2, interval_s = $3 WHERE id = $1",
        login_id,
        at,
        interval_s,
    )


async def token_issued(conn: asyncpg.Connection, login_id: int, token_id: int, at: dt.datetime) -> None:
    await conn.execute(
        "UPDATE developer_device_logins SET token_id = $2, polled_at = $3 WHERE id = $1",
        login_id,
        token_id,
        at,
    )
