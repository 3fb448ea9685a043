"""All SQL of staff memberships (table miniapp_staff: unit '' means app-wide)."""

from __future__ import annotations

import datetime as dt

import asyncpg


async def grant(
    conn: asyncpg.Connection, app_id: str, account_id: int, role: str, unit: str, by: str, at: dt.datetime
) -> asyncpg.Record | None:
    """The new membership, None when it exists already. ForeignKeyViolationError: no such account."""
    return await conn.fetchrow(
        "INSERT INTO miniapp_staff (app_id, account_id, role, unit, granted_at, granted_by)"
        " VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING"
        " RETURNING account_id, role, unit, granted_at, granted_by",
        app_id,
        account_id,
        role,
        unit,
        at,
        by,
    )


async def revoke(conn: asyncpg.Connection, app_id: str, account_id: int, role: str, unit: str) -> bool:
    done = await conn.fetchval(
        "DELETE FROM miniapp_staff WHERE app_id = $1 AND account_id = $2 AND role = $3 AND unit = $4"
        " RETURNING 1",
        app_id,
        account_id,
        role,
        unit,
    )
    return done is not None


async def memberships(conn: asyncpg.Connection, app_id: str, account_id: int) -> list[asyncpg.Record]:
    """One account's memberships in one app, by role, app-wide first, then by unit."""
    return await conn.fetch(
        "SELECT role, unit FROM miniapp_staff WHERE app_id = $1 AND account_id = $2 ORDER BY role, unit",
        app_id,
        account_id,
    )


async def holds(conn: asyncpg.Connection, app_id: str, account_id: int, role: str) -> bool:
    found = await conn.fetchval(
        "SELECT 1 FROM miniapp_staff WHERE app_id = $1 AND account_id = $2 AND role = $3 LIMIT 1",
        app_id,
        account_id,
        role,
    )
    return found is not None


async def listing(conn: asyncpg.Connection, app_id: str, limit: int) -> list[asyncpg.Record]:
    return await conn.fetch(
        "SELECT account_id, role, unit, granted_at, granted_by FROM miniapp_staff WHERE app_id = $1"
        " ORDER BY role, unit, account_id LIMIT $2",
        app_id,
        limit,
    )


async def of_account(conn: asyncpg.Connection, account_id: int) -> list[asyncpg.Record]:
    """Every membership one account holds, in every app."""
    return await conn.fetch(
        "SELECT app_id, role, unit, granted_at, granted_by FROM miniapp_staff WHERE account_id = $1"
        " ORDER BY app_id, role, unit",
        account_id,
    )
