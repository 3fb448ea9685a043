"""SQL for the trust list, partner keys, health status, code generations and revocations."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import asyncpg

# -- trust list ------------------------------------------------------------------------------------------


async def lock_trust_list(conn: asyncpg.Connection) -> None:
    """Serialise publication so two workers never sign two documents with one version."""
    await conn.execute("SELECT pg_advisory_xact_lock(hashtext('trust_list'))")


async def latest_trust_list(conn: asyncpg.Connection) -> asyncpg.Record | None:
    return await conn.fetchrow(
        "SELECT version, envelope, etag FROM trust_list_versions ORDER BY version DESC LIMIT 1"
    )


async def insert_trust_list(conn: asyncpg.Connection, version: int, envelope: bytes, etag: str) -> None:
    await conn.execute(
        "INSERT INTO trust_list_versions (version, envelope, etag) VALUES ($1, $2, $3)",
        version,
        envelope,
        etag,
    )


async def active_partner_keys(conn: asyncpg.Connection) -> list[asyncpg.Record]:
    return await conn.fetch(
        """SELECT issuer, key_id, alg, public_key, credential_types, not_before, not_after
           FROM partner_issuer_keys WHERE removed_at IS NULL ORDER BY issuer, key_id"""
    )


async def partner_key(conn: asyncpg.Connection, issuer: int, key_id: bytes) -> asyncpg.Record | None:
    return await conn.fetchrow(
        "SELECT public_key, removed_at FROM partner_issuer_keys WHERE issuer = $1 AND key_id = $2 FOR UPDATE",
        issuer,
        key_id,
    )


async def upsert_partner_key(conn: asyncpg.Connection, **fields: Any) -> None:
    await conn.execute(
        """INSERT INTO partner_issuer_keys
               (issuer, key_id, alg, public_key, credential_types, not_before, not_after, added_at, added_by)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
           ON CONFLICT (issuer, key_id) DO UPDATE SET
               alg = EXCLUDED.alg, public_key = EXCLUDED.public_key, credential_types = EXCLUDED.credential_types,
               not_before = EXCLUDED.not_before, not_after = EXCLUDED.not_after, added_at = EXCLUDED.added_at,
               added_by = EXCLUDED.added_by, removed_at = NULL""",
        fields["issuer"],
        fields["key_id"],
        fields["alg"],
        fields["public_key"],
        fields["credential_types"],
        fields["not_before"],
        fields["not_after"],
        fields["added_at"],
        fields["added_by"],
    )


async def remove_partner_key(conn: asyncpg.Connection, issuer: int, key_id: bytes, at: datetime) -> bool:
    result = await conn.execute(
        "UPDATE partner_issuer_keys SET removed_at = $3 WHERE issuer = $1 AND key_id = $2 AND removed_at IS NULL",
        issuer,
        key_id,
        at,
    )
    return bool(result.endswith(" 1"))


# -- code status (what an Ankang code says about its holder) --------------------------------------------


async def code_generation(conn: asyncpg.Connection, account_id: int) -> int:
    """The account's current code generation (0: it never revoked its codes)."""
    generation = await conn.fetchval(
        "SELECT generation FROM ankang_generations WHERE account_id = $1", account_id
    )
    return int(generation or 0)


async def code_generations(conn: asyncpg.Connection, account_ids: list[int]) -> dict[int, int]:
    """The current code generation of each account that ever revoked its codes (the others are at 0)."""
    rows = await conn.fetch(
        "SELECT account_id, generation FROM ankang_generations WHERE account_id = ANY($1::bigint[])",
        account_ids,
    )
    return {r["account_id"]: r["generation"] for r in rows}


async def code_status(
    conn: asyncpg.Connection, account_id: int, id_index: bytes | None, now: datetime
) -> asyncpg.Record:
    """The colour in force at `now` for the ID number of this blind index (None: never set, or not verified) and
    the account's code generation, in one round trip."""
    return await conn.fetchrow(
        """SELECT (SELECT h.colour FROM health_status_history h
                    WHERE h.id_number_index = $2 AND h.effective_at <= $3
                    ORDER BY h.effective_at DESC, h.id DESC LIMIT 1) AS colour,
                  coalesce((SELECT g.generation FROM ankang_generations g WHERE g.account_id = $1), 0)
                    AS generation""",
        account_id,
        id_index,
        now,
    )


# -- health status ----------------------------------------------------------------------------------------


async def insert_status(
    conn: asyncpg.Connection,
    *,
    id_index: bytes,
    colour: str,
    reason: str,
    effective_at: datetime,
    set_at: datetime,
    set_by: str,
    import_digest: bytes | None = None,
) -> None:
    await conn.execute(
        """INSERT INTO health_status_history
               (id_number_index, colour, reason, effective_at, set_at, set_by, import_digest)
           VALUES ($1, $2, $3, $4, $5, $6, $7)""",
        id_index,
        colour,
        reason,
        effective_at,
        set_at,
        set_by,
        import_digest,
    )


async def has_status(conn: asyncpg.Connection, id_index: bytes) -> bool:
    return bool(
        await conn.fetchval("SELECT 1 FROM health_status_history WHERE id_number_index = $1", id_index)
    )


async def status_history(conn: asyncpg.Connection, id_index: bytes, limit: int = 50) -> list[asyncpg.Record]:
    return await conn.fetch(
        """SELECT colour, reason, effective_at FROM health_status_history WHERE id_number_index = $1
           ORDER BY effective_at DESC, id DESC LIMIT $2""",
        id_index,
        limit,
    )


async def claim_import(conn: asyncpg.Connection, digest: bytes, at: datetime, by: str) -> bool:
    """True if this transaction is the first to import the file; a concurrent twin waits here, then sees False."""
    result = await conn.execute(
        """INSERT INTO health_status_imports (digest, created_at, created_by) VALUES ($1, $2, $3)
           ON CONFLICT DO NOTHING""",
        digest,
        at,
        by,
    )
    return bool(result.endswith(" 1"))


async def import_result(conn: asyncpg.Connection, digest: bytes) -> Any:
    return await conn.fetchval("SELECT result FROM health_status_imports WHERE digest = $1", digest)


async def store_import_result(conn: asyncpg.Connection, digest: bytes, result: Any) -> None:
    await conn.execute("UPDATE health_status_imports SET result = $2 WHERE digest = $1", digest, result)


# -- generations and revocations -------------------------------------------------------------------------


async def next_generation(conn: asyncpg.Connection, account_id: int, at: datetime) -> int:
    """Move the account's codes to a new generation; returns the new one (the old is new - 1)."""
    return int(
        await conn.fetchval(
            """INSERT INTO ankang_generations (account_id, generation, revoked_at) VALUES ($1, 1, $2)
               ON CONFLICT (account_id) DO UPDATE
                   SET generation = ankang_generations.generation + 1, revoked_at = EXCLUDED.revoked_at
               RETURNING generation""",
            account_id,
            at,
        )
    )


async def lock_revocations(conn: asyncpg.Connection, issuer: int) -> int:
    """Take the issuer's revocation lock; returns its current version."""
    await conn.execute("SELECT pg_advisory_xact_lock(hashtext('revocations'), $1)", issuer)
    return int(
        await conn.fetchval("SELECT coalesce(max(version), 0) FROM revocations WHERE issuer = $1", issuer)
    )


async def insert_revocation(
    conn: asyncpg.Connection,
    *,
    issuer: int,
    version: int,
    kind: str,
    ref: bytes,
    revoked_at: datetime,
    expires_at: datetime,
    reason: str,
) -> bool:
    result = await conn.execute(
        """INSERT INTO revocations (issuer, version, kind, ref, revoked_at, expires_at, reason)
           VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (issuer, kind, ref) DO NOTHING""",
        issuer,
        version,
        kind,
        ref,
        revoked_at,
        expires_at,
        reason,
    )
    return bool(result.endswith(" 1"))


async def revocation_version(conn: asyncpg.Connection, issuer: int) -> int:
    return int(
        await conn.fetchval("SELECT coalesce(max(version), 0) FROM revocations WHERE issuer = $1", issuer)
    )


async def revocations_after(
    conn: asyncpg.Connection, issuer: int, since: int, now: datetime | None = None
) -> list[asyncpg.Record]:
    """Entries after `since`; a full list (since 0) leaves out entries whose credentials have all expired."""
    if since == 0 and now is not None:
        return await conn.fetch(
            """SELECT version, kind, ref FROM revocations WHERE issuer = $1 AND expires_at > $2
               ORDER BY version""",
            issuer,
            now,
        )
    return await conn.fetch(
        "SELECT version, kind, ref FROM revocations WHERE issuer = $1 AND version > $2 ORDER BY version",
        issuer,
        since,
    )


async def revocations_for_servers(conn: asyncpg.Connection, after: datetime) -> list[asyncpg.Record]:
    """Every revocation still relevant, with its time: what the server's own scan path holds in memory."""
    return await conn.fetch(
        "SELECT issuer, version, kind, ref, revoked_at FROM revocations WHERE expires_at > $1 ORDER BY issuer, version",
        after,
    )
