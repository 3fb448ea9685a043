"""SQL of what residents hold with mini-apps: consent, app-scoped user ids, inbox, payments, app passes."""

from __future__ import annotations

import datetime as dt
from typing import Any

import asyncpg

# ---- consent --------------------------------------------------------------------------------------------


async def set_consent(
    conn: asyncpg.Connection, account_id: int, app_id: str, scope: str, granted: bool, at: dt.datetime
) -> None:
    await conn.execute(
        "INSERT INTO miniapp_consents (account_id, app_id, scope, granted, decided_at) VALUES ($1, $2, $3, $4, $5)"
        " ON CONFLICT (account_id, app_id, scope) DO UPDATE SET granted = $4, decided_at = $5",
        account_id,
        app_id,
        scope,
        granted,
        at,
    )


async def consents(
    conn: asyncpg.Connection, account_id: int, app_id: str | None = None
) -> list[asyncpg.Record]:
    return await conn.fetch(
        "SELECT app_id, scope, granted, decided_at FROM miniapp_consents WHERE account_id = $1"
        " AND ($2::text IS NULL OR app_id = $2) ORDER BY app_id, scope",
        account_id,
        app_id,
    )


async def consent(conn: asyncpg.Connection, account_id: int, app_id: str, scope: str) -> bool | None:
    return await conn.fetchval(  # type: ignore[no-any-return]
        "SELECT granted FROM miniapp_consents WHERE account_id = $1 AND app_id = $2 AND scope = $3",
        account_id,
        app_id,
        scope,
    )


# ---- app users ------------------------------------------------------------------------------------------


async def remember_user(
    conn: asyncpg.Connection, app_id: str, app_user_id: str, account_id: int, at: dt.datetime
) -> None:
    await conn.execute(
        "INSERT INTO miniapp_users (app_id, app_user_id, account_id, first_seen) VALUES ($1, $2, $3, $4)"
        " ON CONFLICT DO NOTHING",
        app_id,
        app_user_id,
        account_id,
        at,
    )


async def remember_users(conn: asyncpg.Connection, rows: list[tuple[str, str, int, dt.datetime]]) -> None:
    """`remember_user` for many (app, app user id, account, first seen) at once: one statement, in key order."""
    rows = sorted(rows)
    await conn.execute(
        "INSERT INTO miniapp_users (app_id, app_user_id, account_id, first_seen)"
        " SELECT * FROM unnest($1::text[], $2::text[], $3::bigint[], $4::timestamptz[]) ON CONFLICT DO NOTHING",
        [r[0] for r in rows],
        [r[1] for r in rows],
        [r[2] for r in rows],
        [r[3] for r in rows],
    )


async def account_of(conn: asyncpg.Connection, app_id: str, app_user_id: str) -> int | None:
    return await conn.fetchval(  # type: ignore[no-any-return]
        "SELECT account_id FROM miniapp_users WHERE app_id = $1 AND app_user_id = $2", app_id, app_user_id
    )


# ---- inbox ----------------------------------------------------------------------------------------------


async def insert_message(
    conn: asyncpg.Connection, account_id: int, app_id: str, title: str, body: str, at: dt.datetime
) -> int:
    return await conn.fetchval(  # type: ignore[no-any-return]
        "INSERT INTO miniapp_inbox (account_id, app_id, title, body, created_at) VALUES ($1, $2, $3, $4, $5)"
        " RETURNING id",
        account_id,
        app_id,
        title,
        body,
        at,
    )


async def inbox(
    conn: asyncpg.Connection, account_id: int, before: int | None, limit: int
) -> list[asyncpg.Record]:
    return await conn.fetch(
        "SELECT i.id, i.app_id, coalesce(a.name, i.app_id) AS app_name, i.title, i.body, i.created_at, i.read_at"
        " FROM miniapp_inbox i LEFT JOIN miniapps a USING (app_id)"
        " WHERE i.account_id = $1 AND ($2::bigint IS NULL OR i.id < $2) ORDER BY i.id DESC LIMIT $3",
        account_id,
        before,
        limit,
    )


async def messages_today(conn: asyncpg.Connection, app_id: str, account_id: int, since: dt.datetime) -> int:
    return await conn.fetchval(  # type: ignore[no-any-return]
        "SELECT count(*) FROM miniapp_inbox WHERE app_id = $1 AND account_id = $2 AND created_at >= $3",
        app_id,
        account_id,
        since,
    )


# ---- payments -------------------------------------------------------------------------------------------


async def insert_payment(conn: asyncpg.Connection, **f: Any) -> asyncpg.Record:
    """Create the pending payment, or return the existing one for the same idempotency key."""
    row = await conn.fetchrow(
        "INSERT INTO miniapp_payments (app_id, account_id, amount_fen, reason, idempotency_key, status, created_at)"
        " VALUES ($1, $2, $3, $4, $5, 'pending_confirmation', $6) ON CONFLICT (app_id, account_id, idempotency_key) DO NOTHING"
        " RETURNING *",
        f["app_id"],
        f["account_id"],
        f["amount_fen"],
        f["reason"],
        f["idempotency_key"],
        f["at"],
    )
    if row is None:
        row = await conn.fetchrow(
            "SELECT * FROM miniapp_payments WHERE app_id = $1 AND account_id = $2 AND idempotency_key = $3",
            f["app_id"],
            f["account_id"],
            f["idempotency_key"],
        )
    assert row is not None
    return row


async def payment(
    conn: asyncpg.Connection, payment_id: int, *, for_update: bool = False
) -> asyncpg.Record | None:
    lock = " FOR UPDATE" if for_update else ""
    return await conn.fetchrow(f"SELECT * FROM miniapp_payments WHERE id = $1{lock}", payment_id)  # noqa: S608


async def decide_payment(
    conn: asyncpg.Connection,
    payment_id: int,
    status: str,
    at: dt.datetime,
    charge_id: int | None,
    failure: str | None,
) -> None:
    await conn.execute(
        "UPDATE miniapp_payments SET status = $2, decided_at = $3, charge_id = $4, failure = $5 WHERE id = $1",
        payment_id,
        status,
        at,
        charge_id,
        failure,
    )


async def payments_of(conn: asyncpg.Connection, account_id: int, limit: int) -> list[asyncpg.Record]:
    return await conn.fetch(
        "SELECT * FROM miniapp_payments WHERE account_id = $1 ORDER BY id DESC LIMIT $2", account_id, limit
    )


async def record_refund(
    conn: asyncpg.Connection,
    payment_id: int,
    *,
    amount_fen: int,
    refunded_fen: int,
    reason: str,
    idempotency_key: str,
    at: dt.datetime,
) -> None:
    """Note a refund the one-card gave for this payment (in its transaction): listed once per idempotency key,
    and the payment's total refunded set to the one-card's (`refunded_fen`, all refunds so far)."""
    await conn.execute(
        "INSERT INTO miniapp_payment_refunds (payment_id, amount_fen, reason, refunded_at, idempotency_key)"
        " VALUES ($1, $2, $3, $4, $5) ON CONFLICT (payment_id, idempotency_key) DO NOTHING",
        payment_id,
        amount_fen,
        reason,
        at,
        idempotency_key,
    )
    await conn.execute(
        "UPDATE miniapp_payments SET refunded_fen = greatest(refunded_fen, $2) WHERE id = $1",
        payment_id,
        refunded_fen,
    )


async def refunds_of(conn: asyncpg.Connection, payment_ids: list[int]) -> list[asyncpg.Record]:
    """The refunds of these payments, oldest first."""
    return await conn.fetch(
        "SELECT payment_id, amount_fen, reason, refunded_at FROM miniapp_payment_refunds"
        " WHERE payment_id = ANY($1::bigint[]) ORDER BY payment_id, id",
        payment_ids,
    )


# ---- app passes -----------------------------------------------------------------------------------------


async def insert_pass(
    conn: asyncpg.Connection,
    app_id: str,
    kind: str,
    holder: str | None,
    valid_until: dt.datetime,
    at: dt.datetime,
) -> int:
    return await conn.fetchval(  # type: ignore[no-any-return]
        "INSERT INTO miniapp_passes (app_id, kind, holder, valid_until, issued_at) VALUES ($1, $2, $3, $4, $5)"
        " RETURNING id",
        app_id,
        kind,
        holder,
        valid_until,
        at,
    )


async def revoke_pass(
    conn: asyncpg.Connection, app_id: str, pass_id: int, at: dt.datetime
) -> dt.datetime | None:
    """Revoke a live pass; its valid_until, or None when it was not live (unknown, revoked or expired)."""
    return await conn.fetchval(  # type: ignore[no-any-return]
        "UPDATE miniapp_passes SET revoked_at = $3 WHERE id = $2 AND app_id = $1 AND revoked_at IS NULL"
        " AND valid_until > $3 RETURNING valid_until",
        app_id,
        pass_id,
        at,
    )


async def pass_holder(conn: asyncpg.Connection, app_id: str, pass_id: int) -> tuple[bool, str | None]:
    """(revoked, the holder's app-scoped id in the issuing app) of a pass; an unknown pass counts as revoked."""
    row = await conn.fetchrow(
        "SELECT revoked_at IS NOT NULL AS revoked, holder FROM miniapp_passes WHERE id = $2 AND app_id = $1",
        app_id,
        pass_id,
    )
    return (True, None) if row is None else (row["revoked"], row["holder"])


async def pass_revoked(conn: asyncpg.Connection, app_id: str, pass_id: int) -> bool:
    revoked = await conn.fetchval(
        "SELECT revoked_at IS NOT NULL FROM miniapp_passes WHERE id = $2 AND app_id = $1", app_id, pass_id
    )
    return revoked is not False
