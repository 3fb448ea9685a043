"""SQL for accounts, roles, OTP codes, sessions and refresh tokens."""

from __future__ import annotations

import uuid
from datetime import date, datetime

import asyncpg


async def insert_otp(
    conn: asyncpg.Connection, phone_index: bytes, code_hash: bytes, now: datetime, expires_at: datetime
) -> None:
    # Only the newest code counts: older unconsumed ones stop working the moment a new one is sent.
    await conn.execute(
        "UPDATE otp_codes SET consumed_at = $2 WHERE phone_index = $1 AND consumed_at IS NULL",
        phone_index,
        now,
    )
    await conn.execute(
        "INSERT INTO otp_codes (phone_index, code_hash, created_at, expires_at) VALUES ($1, $2, $3, $4)",
        phone_index,
        code_hash,
        now,
        expires_at,
    )


async def live_otp_for_update(
    conn: asyncpg.Connection, phone_index: bytes, now: datetime
) -> asyncpg.Record | None:
    return await conn.fetchrow(
        """SELECT id, code_hash, attempts FROM otp_codes
           WHERE phone_index = $1 AND consumed_at IS NULL AND expires_at > $2
           ORDER BY created_at DESC LIMIT 1 FOR UPDATE""",
        phone_index,
        now,
    )


async def count_otp_attempt(conn: asyncpg.Connection, otp_id: int) -> int:
    return await conn.fetchval(
        "UPDATE otp_codes SET attempts = attempts + 1 WHERE id = $1 RETURNING attempts", otp_id
    )


async def consume_otp(conn: asyncpg.Connection, otp_id: int, now: datetime) -> None:
    await conn.execute("UPDATE otp_codes SET consumed_at = $2 WHERE id = $1", otp_id, now)


async def upsert_account(conn: asyncpg.Connection, phone_index: bytes, phone_enc: bytes) -> int:
    row = await conn.fetchrow(
        """INSERT INTO accounts (phone_index, phone_enc) VALUES ($1, $2)
           ON CONFLICT (phone_index) DO UPDATE SET phone_index = EXCLUDED.phone_index
           RETURNING id, (xmax = 0) AS created""",
        phone_index,
        phone_enc,
    )
    if row["created"]:
        await conn.execute("INSERT INTO account_roles (account_id, role) VALUES ($1, 'resident')", row["id"])
    return int(row["id"])


async def account_by_phone(conn: asyncpg.Connection, phone_index: bytes) -> asyncpg.Record | None:
    return await conn.fetchrow("SELECT id FROM accounts WHERE phone_index = $1", phone_index)


async def get_account(conn: asyncpg.Connection, account_id: int) -> asyncpg.Record | None:
    return await conn.fetchrow(
        """SELECT a.id, a.phone_enc, a.name_enc, a.id_number_enc, a.id_number_index, a.birth_date, a.sex,
                  a.verified_at, a.created_at,
                  coalesce(array_agg(r.role ORDER BY r.role) FILTER (WHERE r.role IS NOT NULL), '{}') AS roles
           FROM accounts a LEFT JOIN account_roles r ON r.account_id = a.id
           WHERE a.id = $1 GROUP BY a.id""",
        account_id,
    )


async def roles_of(conn: asyncpg.Connection, account_id: int) -> list[str]:
    rows = await conn.fetch("SELECT role FROM account_roles WHERE account_id = $1 ORDER BY role", account_id)
    return [r["role"] for r in rows]


async def grant_role(conn: asyncpg.Connection, account_id: int, role: str) -> bool:
    result = await conn.execute(
        "INSERT INTO account_roles (account_id, role) VALUES ($1, $2) ON CONFLICT DO NOTHING",
        account_id,
        role,
    )
    return result.endswith(" 1")


async def revoke_role(conn: asyncpg.Connection, account_id: int, role: str) -> bool:
    result = await conn.execute(
        "DELETE FROM account_roles WHERE account_id = $1 AND role = $2", account_id, role
    )
    return result.endswith(" 1")


async def account_by_id_number(conn: asyncpg.Connection, id_index: bytes) -> asyncpg.Record | None:
    return await conn.fetchrow("SELECT id FROM accounts WHERE id_number_index = $1", id_index)


async def set_identity(
    conn: asyncpg.Connection,
    account_id: int,
    *,
    name_enc: bytes,
    id_number_enc: bytes,
    id_number_index: bytes,
    birth_date: date,
    sex: str,
    now: datetime,
) -> None:
    await conn.execute(
        """UPDATE accounts SET name_enc = $2, id_number_enc = $3, id_number_index = $4, birth_date = $5, sex = $6,
                  verified_at = $7
           WHERE id = $1""",
        account_id,
        name_enc,
        id_number_enc,
        id_number_index,
        birth_date,
        sex,
        now,
    )


async def create_session(conn: asyncpg.Connection, account_id: int, now: datetime) -> uuid.UUID:
    session_id = uuid.uuid4()
    await conn.execute(
        "INSERT INTO sessions (id, account_id, created_at) VALUES ($1, $2, $3)", session_id, account_id, now
    )
    return session_id


async def insert_refresh_token(
    conn: asyncpg.Connection, token_hash: bytes, session_id: uuid.UUID, now: datetime, expires_at: datetime
) -> None:
    await conn.execute(
        "INSERT INTO refresh_tokens (token_hash, session_id, issued_at, expires_at) VALUES ($1, $2, $3, $4)",
        token_hash,
        session_id,
        now,
        expires_at,
    )


async def refresh_token_for_update(conn: asyncpg.Connection, token_hash: bytes) -> asyncpg.Record | None:
    return await conn.fetchrow(
        """SELECT t.session_id, t.expires_at, t.spent_at, s.account_id, s.ended_at
           FROM refresh_tokens t JOIN sessions s ON s.id = t.session_id
           WHERE t.token_hash = $1 FOR UPDATE OF t, s""",
        token_hash,
    )


async def spend_refresh_token(conn: asyncpg.Connection, token_hash: bytes, now: datetime) -> None:
    await conn.execute("UPDATE refresh_tokens SET spent_at = $2 WHERE token_hash = $1", token_hash, now)


async def end_session(conn: asyncpg.Connection, session_id: uuid.UUID, now: datetime, reason: str) -> None:
    await conn.execute(
        "UPDATE sessions SET ended_at = $2, end_reason = $3 WHERE id = $1 AND ended_at IS NULL",
        session_id,
        now,
        reason,
    )
    await conn.execute(
        "UPDATE refresh_tokens SET spent_at = $2 WHERE session_id = $1 AND spent_at IS NULL", session_id, now
    )


async def end_sessions_of(
    conn: asyncpg.Connection, account_id: int, now: datetime, reason: str
) -> list[uuid.UUID]:
    """End every live session of the account (its roles changed); their refresh tokens stop working too."""
    rows = await conn.fetch(
        """UPDATE sessions SET ended_at = $2, end_reason = $3
           WHERE account_id = $1 AND ended_at IS NULL RETURNING id""",
        account_id,
        now,
        reason,
    )
    ended = [r["id"] for r in rows]
    await conn.execute(
        "UPDATE refresh_tokens SET spent_at = $2 WHERE session_id = ANY($1::uuid[]) AND spent_at IS NULL",
        ended,
        now,
    )
    return ended


async def name_enc(conn: asyncpg.Connection, account_id: int) -> bytes | None:
    value = await conn.fetchval("SELECT name_enc FROM accounts WHERE id = $1", account_id)
    return None if value is None else bytes(value)


async def verified_id_index(conn: asyncpg.Connection, account_id: int) -> bytes | None:
    value = await conn.fetchval(
        "SELECT id_number_index FROM accounts WHERE id = $1 AND verified_at IS NOT NULL", account_id
    )
    return None if value is None else bytes(value)
