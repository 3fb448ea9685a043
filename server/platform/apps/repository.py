"""SQL of the app registry: developer tokens, apps and versions, release state, scene bindings."""

from __future__ import annotations

import datetime as dt
from typing import Any

import asyncpg

# ---- developer tokens -----------------------------------------------------------------------------------


async def insert_token(conn: asyncpg.Connection, account_id: int, token_hash: bytes, at: dt.datetime) -> int:
    return await conn.fetchval(  # type: ignore[no-any-return]
        "INSERT INTO developer_tokens (account_id, token_hash, created_at) VALUES ($1, $2, $3) RETURNING id",
        account_id,
        token_hash,
        at,
    )


async def token_owner(conn: asyncpg.Connection, token_hash: bytes) -> int | None:
    return await conn.fetchval(  # type: ignore[no-any-return]
        "SELECT account_id FROM developer_tokens WHERE token_hash = $1 AND revoked_at IS NULL", token_hash
    )


async def revoke_token(conn: asyncpg.Connection, token_id: int, account_id: int, at: dt.datetime) -> bool:
    done = await conn.fetchval(
        "UPDATE developer_tokens SET revoked_at = coalesce(revoked_at, $3) WHERE id = $1 AND account_id = $2"
        " RETURNING id",
        token_id,
        account_id,
        at,
    )
    return done is not None


# ---- apps and versions ----------------------------------------------------------------------------------


async def app_for_update(conn: asyncpg.Connection, app_id: str) -> asyncpg.Record | None:
    return await conn.fetchrow("SELECT * FROM miniapps WHERE app_id = $1 FOR UPDATE", app_id)


async def app(conn: asyncpg.Connection, app_id: str) -> asyncpg.Record | None:
    """The app's row, with `db_keys` and `db_bytes`: the storage its ctx.db commits counted apart (0101, 0170)."""
    return await conn.fetchrow(
        "SELECT m.*, u.keys AS db_keys, u.bytes AS db_bytes FROM miniapps m"
        " CROSS JOIN LATERAL miniapp_db_usage(m.app_id) u WHERE m.app_id = $1",
        app_id,
    )


async def register_app(
    conn: asyncpg.Connection, app_id: str, developer_id: int, name: str, at: dt.datetime
) -> bool:
    """Register the app to this developer unless someone registered it first; True if this call did."""
    created = await conn.fetchval(
        "INSERT INTO miniapps (app_id, developer_id, name, created_at, updated_at) VALUES ($1, $2, $3, $4, $4)"
        " ON CONFLICT (app_id) DO NOTHING RETURNING app_id",
        app_id,
        developer_id,
        name,
        at,
    )
    return created is not None


async def version(conn: asyncpg.Connection, app_id: str, version: str) -> asyncpg.Record | None:
    return await conn.fetchrow(
        "SELECT app_id, version, digest, status, checks, manifest, size_bytes, review_reason, uploaded_at,"
        " reviewed_at, released_at FROM miniapp_versions WHERE app_id = $1 AND version = $2",
        app_id,
        version,
    )


async def version_for_update(conn: asyncpg.Connection, app_id: str, version: str) -> asyncpg.Record | None:
    return await conn.fetchrow(
        "SELECT app_id, version, digest, status, manifest, released_at FROM miniapp_versions"
        " WHERE app_id = $1 AND version = $2 FOR UPDATE",
        app_id,
        version,
    )


async def archive(conn: asyncpg.Connection, app_id: str, version: str) -> tuple[str, bytes] | None:
    row = await conn.fetchrow(
        "SELECT digest, archive FROM miniapp_versions WHERE app_id = $1 AND version = $2", app_id, version
    )
    return None if row is None else (row["digest"], bytes(row["archive"]))


async def insert_version(conn: asyncpg.Connection, **fields: Any) -> bool:
    """Insert unless the version exists; True if this call inserted it."""
    done = await conn.fetchval(
        "INSERT INTO miniapp_versions (app_id, version, digest, status, checks, manifest, archive, size_bytes,"
        " uploaded_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT DO NOTHING RETURNING version",
        fields["app_id"],
        fields["version"],
        fields["digest"],
        fields["status"],
        fields["checks"],
        fields["manifest"],
        fields["archive"],
        fields["size_bytes"],
        fields["at"],
    )
    return done is not None


async def residence_scopes(conn: asyncpg.Connection, app_id: str, besides: str) -> dict[str, list[str]]:
    """The `registered_in:` scopes of the app's versions other than `besides` that are or may become live: in
    review, approved (any approved version may be released, phased beside the stable one) or live -> the versions
    asking each."""
    rows = await conn.fetch(
        "SELECT s.scope, array_agg(v.version ORDER BY v.uploaded_at) AS versions"
        " FROM miniapp_versions v JOIN miniapps a USING (app_id),"
        " LATERAL jsonb_object_keys(coalesce(v.manifest->'scopes', '{}'::jsonb)) AS s(scope)"
        " WHERE v.app_id = $1 AND v.version <> $2 AND s.scope LIKE 'registered\\_in:%'"
        " AND (v.status IN ('in_review', 'approved') OR v.version IN (a.stable_version, a.phased_version))"
        " GROUP BY s.scope",
        app_id,
        besides,
    )
    return {r["scope"]: list(r["versions"]) for r in rows}


async def versions(conn: asyncpg.Connection, app_id: str) -> list[asyncpg.Record]:
    return await conn.fetch(
        "SELECT version, digest, status, checks, review_reason, uploaded_at, reviewed_at, released_at"
        " FROM miniapp_versions WHERE app_id = $1 ORDER BY uploaded_at DESC",
        app_id,
    )


async def list_apps(conn: asyncpg.Connection, limit: int) -> list[asyncpg.Record]:
    return await conn.fetch(
        "SELECT a.app_id, a.name, a.status, a.stable_version, a.phased_version, a.phased_percent,"
        " a.suspended_reason FROM miniapps a ORDER BY a.app_id LIMIT $1",
        limit,
    )


async def review_queue(conn: asyncpg.Connection, limit: int) -> list[asyncpg.Record]:
    return await conn.fetch(
        "SELECT v.app_id, v.version, v.digest, v.checks, v.manifest, v.size_bytes, v.uploaded_at, a.developer_id,"
        " p.version AS previous_version, p.manifest AS previous_manifest"
        " FROM miniapp_versions v JOIN miniapps a USING (app_id)"
        " LEFT JOIN miniapp_versions p ON p.app_id = a.app_id AND p.version = a.stable_version"
        " WHERE v.status = 'in_review'"
        " ORDER BY v.uploaded_at LIMIT $1",
        limit,
    )


async def set_review(
    conn: asyncpg.Connection, app_id: str, version: str, status: str, reason: str, by: int, at: dt.datetime
) -> None:
    await conn.execute(
        "UPDATE miniapp_versions SET status = $3, review_reason = $4, reviewed_by = $5, reviewed_at = $6"
        " WHERE app_id = $1 AND version = $2",
        app_id,
        version,
        status,
        reason,
        by,
        at,
    )


async def mark_released(conn: asyncpg.Connection, app_id: str, version: str, at: dt.datetime) -> None:
    await conn.execute(
        "UPDATE miniapp_versions SET released_at = $3 WHERE app_id = $1 AND version = $2", app_id, version, at
    )


async def recent_released(conn: asyncpg.Connection, app_id: str, limit: int) -> list[str]:
    rows = await conn.fetch(
        "SELECT version FROM miniapp_versions WHERE app_id = $1 AND released_at IS NOT NULL"
        " ORDER BY released_at DESC LIMIT $2",
        app_id,
        limit,
    )
    return [r["version"] for r in rows]


async def set_release(conn: asyncpg.Connection, app_id: str, at: dt.datetime, **fields: Any) -> None:
    allowed = {
        "stable_version",
        "phased_version",
        "phased_percent",
        "phased_whitelist",
        "status",
        "suspended_reason",
    }
    assert fields and set(fields) <= allowed
    names = sorted(fields)
    sets = ", ".join(f"{name} = ${i + 3}" for i, name in enumerate(names))
    await conn.execute(
        f"UPDATE miniapps SET {sets}, updated_at = $2 WHERE app_id = $1",  # noqa: S608 - names from the allow-list
        app_id,
        at,
        *(fields[n] for n in names),
    )


async def set_quotas(conn: asyncpg.Connection, app_id: str, at: dt.datetime, **quotas: int) -> None:
    allowed = {"calls_per_minute", "resident_calls_per_minute", "storage_max_keys", "storage_max_bytes"}
    names = sorted(k for k in quotas if k in allowed)
    if not names:
        return
    sets = ", ".join(f"{name} = ${i + 3}" for i, name in enumerate(names))
    await conn.execute(
        f"UPDATE miniapps SET {sets}, updated_at = $2 WHERE app_id = $1",  # noqa: S608 - names from the allow-list
        app_id,
        at,
        *(quotas[n] for n in names),
    )


async def live_apps(conn: asyncpg.Connection) -> list[asyncpg.Record]:
    """Every app with a release, with the manifests of its stable and phased versions (the gateway's view)."""
    return await conn.fetch(
        "SELECT a.app_id, a.name, a.status, a.stable_version, a.phased_version, a.phased_percent,"
        " a.phased_whitelist, a.calls_per_minute, a.resident_calls_per_minute,"
        " s.manifest AS stable_manifest, p.manifest AS phased_manifest"
        " FROM miniapps a"
        " LEFT JOIN miniapp_versions s ON s.app_id = a.app_id AND s.version = a.stable_version"
        " LEFT JOIN miniapp_versions p ON p.app_id = a.app_id AND p.version = a.phased_version"
        " WHERE a.stable_version IS NOT NULL OR a.phased_version IS NOT NULL"
    )


# ---- scene bindings -------------------------------------------------------------------------------------


async def bind_scene(conn: asyncpg.Connection, kind: str, scene: str, app_id: str, at: dt.datetime) -> None:
    await conn.execute(
        "INSERT INTO miniapp_scene_bindings (kind, scene, app_id, bound_at) VALUES ($1, $2, $3, $4)"
        " ON CONFLICT (kind, scene) DO UPDATE SET app_id = $3, bound_at = $4",
        kind,
        scene,
        app_id,
        at,
    )


async def scene_bindings(conn: asyncpg.Connection) -> list[asyncpg.Record]:
    return await conn.fetch("SELECT kind, scene, app_id FROM miniapp_scene_bindings")
