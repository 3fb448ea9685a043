"""SQL for signing keys."""

from __future__ import annotations

from datetime import datetime

import asyncpg

_COLUMNS = "kid, purpose, alg, public_key, private_key_enc, created_at, retired_at"


async def list_keys(conn: asyncpg.Connection, purpose: str | None = None) -> list[asyncpg.Record]:
    if purpose is None:
        return await conn.fetch(f"SELECT {_COLUMNS} FROM signing_keys ORDER BY created_at, kid")  # noqa: S608
    return await conn.fetch(
        f"SELECT {_COLUMNS} FROM signing_keys WHERE purpose = $1 ORDER BY created_at, kid",  # noqa: S608
        purpose,
    )


async def insert_key(
    conn: asyncpg.Connection, *, kid: str, purpose: str, alg: str, public_key: bytes, private_key_enc: bytes
) -> asyncpg.Record:
    return await conn.fetchrow(
        f"""INSERT INTO signing_keys (kid, purpose, alg, public_key, private_key_enc)
            VALUES ($1, $2, $3, $4, $5) RETURNING {_COLUMNS}""",  # noqa: S608
        kid,
        purpose,
        alg,
        public_key,
        private_key_enc,
    )


async def retire_key(conn: asyncpg.Connection, kid: str, at: datetime) -> asyncpg.Record | None:
    return await conn.fetchrow(
        f"""UPDATE signing_keys SET retired_at = $2 WHERE kid = $1 AND retired_at IS NULL
            RETURNING {_COLUMNS}""",  # noqa: S608
        kid,
        at,
    )


async def lock_purpose(conn: asyncpg.Connection, purpose: str) -> None:
    """Serialise key creation per purpose so two workers starting at once do not both create a first key."""
    await conn.execute("SELECT pg_advisory_xact_lock(hashtext('signing_keys/' || $1))", purpose)
