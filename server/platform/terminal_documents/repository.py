"""All SQL of terminal documents (`ctx.terminals.publish`): one immutable row per published version.

Every statement is keyed by the app id the sandbox host vouches for, or the app bound to a terminal's scene."""

from __future__ import annotations

import datetime as dt

import asyncpg


async def lock(conn: asyncpg.Connection, app_id: str, name: str) -> None:
    """Serialise one document's publications for this transaction (the versions quota is a count)."""
    await conn.execute(
        "SELECT pg_advisory_xact_lock(hashtextextended('miniapp_terminal_documents:' || $1 || ':' || $2, 0))",
        app_id,
        name,
    )


async def version(conn: asyncpg.Connection, app_id: str, name: str, number: int) -> asyncpg.Record | None:
    return await conn.fetchrow(
        "SELECT effective_from, content FROM miniapp_terminal_documents"
        " WHERE app_id = $1 AND name = $2 AND version = $3",
        app_id,
        name,
        number,
    )


async def count(conn: asyncpg.Connection, app_id: str, name: str) -> int:
    found: int = await conn.fetchval(
        "SELECT count(*) FROM miniapp_terminal_documents WHERE app_id = $1 AND name = $2", app_id, name
    )
    return found


async def insert(
    conn: asyncpg.Connection,
    app_id: str,
    name: str,
    number: int,
    effective_from: dt.datetime,
    content: bytes,
    envelope: bytes,
    now: dt.datetime,
) -> None:
    await conn.execute(
        "INSERT INTO miniapp_terminal_documents"
        " (app_id, name, version, effective_from, content, envelope, published_at)"
        " VALUES ($1, $2, $3, $4, $5, $6, $7)",
        app_id,
        name,
        number,
        effective_from,
        content,
        envelope,
        now,
    )


async def versions(conn: asyncpg.Connection, app_id: str, name: str) -> list[asyncpg.Record]:
    return list(
        await conn.fetch(
            "SELECT version, effective_from FROM miniapp_terminal_documents WHERE app_id = $1 AND name = $2"
            " ORDER BY effective_from, version",
            app_id,
            name,
        )
    )


async def envelopes(conn: asyncpg.Connection, kind: str, scene: str) -> list[bytes]:
    """Every version of every document of the app bound to the scene, in a stable order (the answer's ETag
    depends on it)."""
    rows = await conn.fetch(
        "SELECT d.envelope FROM miniapp_scene_bindings b"
        " JOIN miniapp_terminal_documents d ON d.app_id = b.app_id"
        " WHERE b.kind = $1 AND b.scene = $2 ORDER BY d.name, d.version",
        kind,
        scene,
    )
    return [bytes(r["envelope"]) for r in rows]


async def contents(conn: asyncpg.Connection, kind: str, scene: str, name: str) -> list[bytes]:
    """Every version of the document `name` of the app bound to the scene."""
    rows = await conn.fetch(
        "SELECT d.content FROM miniapp_scene_bindings b"
        " JOIN miniapp_terminal_documents d ON d.app_id = b.app_id AND d.name = $3"
        " WHERE b.kind = $1 AND b.scene = $2 ORDER BY d.version",
        kind,
        scene,
        name,
    )
    return [bytes(r["content"]) for r in rows]
