"""All SQL of app id registrations: organisations, their members and namespaces, and registrations."""

from __future__ import annotations

import datetime as dt

import asyncpg


async def lock_namespaces(conn: asyncpg.Connection) -> None:
    """Serialise namespace assignments: the overlap check and the insert must see the same set."""
    await conn.execute("LOCK TABLE developer_namespaces IN SHARE ROW EXCLUSIVE MODE")


async def overlapping_namespace(conn: asyncpg.Connection, namespace: str) -> asyncpg.Record | None:
    """A held namespace (and its organisation) equal to `namespace`, covering it, or inside it."""
    return await conn.fetchrow(
        "SELECT namespace, org_id FROM developer_namespaces"
        " WHERE namespace = $1 OR left($1, length(namespace) + 1) = namespace || '.'"
        " OR left(namespace, length($1) + 1) = $1 || '.' LIMIT 1",
        namespace,
    )


async def insert_org(conn: asyncpg.Connection, name: str, created_by: int | None, at: dt.datetime) -> int:
    return await conn.fetchval(  # type: ignore[no-any-return]
        "INSERT INTO developer_orgs (name, created_by, created_at) VALUES ($1, $2, $3) RETURNING id",
        name,
        created_by,
        at,
    )


async def find_org(conn: asyncpg.Connection, name: str) -> int | None:
    return await conn.fetchval(  # type: ignore[no-any-return]
        "SELECT id FROM developer_orgs WHERE name = $1 ORDER BY id LIMIT 1", name
    )


async def org(conn: asyncpg.Connection, org_id: int) -> asyncpg.Record | None:
    return await conn.fetchrow(
        "SELECT o.id, o.name,"
        " array(SELECT namespace FROM developer_namespaces n WHERE n.org_id = o.id ORDER BY namespace)"
        "   AS namespaces,"
        " array(SELECT account_id FROM developer_org_members m WHERE m.org_id = o.id ORDER BY account_id)"
        "   AS members"
        " FROM developer_orgs o WHERE o.id = $1",
        org_id,
    )


async def insert_namespace(
    conn: asyncpg.Connection, namespace: str, org_id: int, by: int | None, at: dt.datetime
) -> None:
    await conn.execute(
        "INSERT INTO developer_namespaces (namespace, org_id, assigned_by, assigned_at) VALUES ($1, $2, $3, $4)",
        namespace,
        org_id,
        by,
        at,
    )


async def add_member(conn: asyncpg.Connection, org_id: int, account_id: int, at: dt.datetime) -> bool:
    """True if the account was not a member before."""
    added = await conn.fetchval(
        "INSERT INTO developer_org_members (org_id, account_id, added_at) VALUES ($1, $2, $3)"
        " ON CONFLICT DO NOTHING RETURNING org_id",
        org_id,
        account_id,
        at,
    )
    return added is not None


async def is_member(conn: asyncpg.Connection, org_id: int, account_id: int) -> bool:
    return bool(
        await conn.fetchval(
            "SELECT EXISTS (SELECT 1 FROM developer_org_members WHERE org_id = $1 AND account_id = $2)",
            org_id,
            account_id,
        )
    )


async def covering_org(conn: asyncpg.Connection, app_id: str, account_id: int) -> int | None:
    """The organisation of `account_id` whose namespace covers `app_id` (namespaces never overlap: one at most)."""
    return await conn.fetchval(  # type: ignore[no-any-return]
        "SELECT n.org_id FROM developer_namespaces n"
        " JOIN developer_org_members m ON m.org_id = n.org_id AND m.account_id = $2"
        " WHERE left($1, length(n.namespace) + 1) = n.namespace || '.'",
        app_id,
        account_id,
    )


_REGISTRATION = (
    "SELECT r.app_id, r.org_id, o.name AS org_name, r.status, r.requested_at, r.requested_by, r.decided_at,"
    " r.reason FROM app_id_registrations r JOIN developer_orgs o ON o.id = r.org_id"
)


async def registration(
    conn: asyncpg.Connection, app_id: str, *, for_update: bool = False
) -> asyncpg.Record | None:
    lock = " FOR UPDATE OF r" if for_update else ""
    return await conn.fetchrow(f"{_REGISTRATION} WHERE r.app_id = $1{lock}", app_id)


async def registrations(conn: asyncpg.Connection, status: str | None, limit: int) -> list[asyncpg.Record]:
    return await conn.fetch(
        f"{_REGISTRATION} WHERE $1::text IS NULL OR r.status = $1 ORDER BY r.requested_at, r.app_id LIMIT $2",
        status,
        limit,
    )


async def put_request(
    conn: asyncpg.Connection, app_id: str, org_id: int, account_id: int, at: dt.datetime
) -> bool:
    """File a pending request unless a pending or approved one exists; a rejected one is replaced."""
    filed = await conn.fetchval(
        "INSERT INTO app_id_registrations (app_id, org_id, status, requested_by, requested_at)"
        " VALUES ($1, $2, 'pending', $3, $4)"
        " ON CONFLICT (app_id) DO UPDATE SET org_id = $2, status = 'pending', requested_by = $3,"
        "   requested_at = $4, decided_by = NULL, decided_at = NULL, reason = ''"
        " WHERE app_id_registrations.status = 'rejected' RETURNING app_id",
        app_id,
        org_id,
        account_id,
        at,
    )
    return filed is not None


async def decide(
    conn: asyncpg.Connection, app_id: str, status: str, by: int, reason: str, at: dt.datetime
) -> None:
    await conn.execute(
        "UPDATE app_id_registrations SET status = $2, decided_by = $3, reason = $4, decided_at = $5"
        " WHERE app_id = $1",
        app_id,
        status,
        by,
        reason,
        at,
    )


async def insert_approved(
    conn: asyncpg.Connection, app_id: str, org_id: int, account_id: int, reason: str, at: dt.datetime
) -> None:
    await conn.execute(
        "INSERT INTO app_id_registrations"
        " (app_id, org_id, status, requested_by, requested_at, decided_by, decided_at, reason)"
        " VALUES ($1, $2, 'approved', $3, $4, $3, $4, $5)",
        app_id,
        org_id,
        account_id,
        at,
        reason,
    )
