"""SQL for top-up orders and the provider's notifications."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

import asyncpg

# -- top-ups -----------------------------------------------------------------------------------------------------


async def insert_topup(
    conn: asyncpg.Connection, *, order_no: str, card_id: int, amount_fen: int, provider: str, at: dt.datetime
) -> None:
    await conn.execute(
        """INSERT INTO onecard_topups (order_no, onecard_account_id, amount_fen, state, provider, created_at,
                                       updated_at)
           VALUES ($1, $2, $3, 'pending', $4, $5, $5)""",
        order_no,
        card_id,
        amount_fen,
        provider,
        at,
    )


async def set_topup_prepay(conn: asyncpg.Connection, order_no: str, prepay_id: str, pay_url: str) -> None:
    await conn.execute(
        "UPDATE onecard_topups SET prepay_id = $2, pay_url = $3 WHERE order_no = $1",
        order_no,
        prepay_id,
        pay_url,
    )


async def topup_for_update(conn: asyncpg.Connection, order_no: str) -> asyncpg.Record | None:
    return await conn.fetchrow(
        """SELECT t.order_no, t.onecard_account_id, t.amount_fen, t.state, t.journal_id, t.anomaly, t.created_at,
                  o.wallet_id, o.owner_account_id
           FROM onecard_topups t JOIN onecard_accounts o ON o.id = t.onecard_account_id
           WHERE t.order_no = $1 FOR UPDATE OF t""",
        order_no,
    )


async def topup_of_owner(
    conn: asyncpg.Connection, order_no: str, owner_account_id: int
) -> asyncpg.Record | None:
    return await conn.fetchrow(
        """SELECT t.order_no, t.amount_fen, t.state, t.pay_url, t.prepay_id, t.created_at, t.credited_at
           FROM onecard_topups t JOIN onecard_accounts o ON o.id = t.onecard_account_id
           WHERE t.order_no = $1 AND o.owner_account_id = $2""",
        order_no,
        owner_account_id,
    )


async def update_topup(
    conn: asyncpg.Connection,
    order_no: str,
    *,
    state: str,
    at: dt.datetime,
    provider_txn_id: str | None = None,
    paid_at: dt.datetime | None = None,
    journal_id: int | None = None,
    anomaly: str | None = None,
) -> None:
    await conn.execute(
        """UPDATE onecard_topups SET state = $2, updated_at = $3,
                  provider_txn_id = coalesce($4, provider_txn_id), paid_at = coalesce($5, paid_at),
                  journal_id = coalesce($6, journal_id),
                  credited_at = CASE WHEN $6::bigint IS NOT NULL THEN $3 ELSE credited_at END,
                  anomaly = coalesce($7, anomaly)
           WHERE order_no = $1""",
        order_no,
        state,
        at,
        provider_txn_id,
        paid_at,
        journal_id,
        anomaly,
    )


async def expire_topups(conn: asyncpg.Connection, before: dt.datetime, now: dt.datetime) -> int:
    result = await conn.execute(
        """UPDATE onecard_topups SET state = 'expired', updated_at = $2
           WHERE state IN ('pending', 'paying') AND created_at < $1""",
        before,
        now,
    )
    return int(result.split()[-1])


async def record_notification(
    conn: asyncpg.Connection,
    *,
    notify_id: str,
    order_no: str,
    state: str,
    amount_fen: int,
    outcome: str,
    at: dt.datetime,
) -> None:
    await conn.execute(
        """INSERT INTO onecard_payment_notifications (notify_id, order_no, state, amount_fen, outcome, received_at)
           VALUES ($1, $2, $3, $4, $5, $6)""",
        notify_id,
        order_no,
        state,
        amount_fen,
        outcome,
        at,
    )


async def topups_for_reconciliation(
    conn: asyncpg.Connection, start: dt.datetime, end: dt.datetime, order_nos: Sequence[str]
) -> list[asyncpg.Record]:
    """Top-ups paid in [start, end) by our records, or named in the provider's bill, with their credit count."""
    return await conn.fetch(
        """SELECT t.order_no, t.amount_fen, t.state, t.provider_txn_id, t.paid_at, t.journal_id, t.anomaly,
                  (SELECT coalesce(sum(p.amount_fen), 0)::bigint FROM ledger_journals j
                     JOIN ledger_postings p ON p.journal_id = j.id
                     JOIN onecard_accounts o ON o.wallet_id = p.ledger_account_id
                     WHERE j.kind = 'topup' AND j.reference = t.order_no) AS credited_fen
           FROM onecard_topups t
           WHERE (t.paid_at >= $1 AND t.paid_at < $2) OR t.order_no = ANY($3::text[])
              OR (t.anomaly IS NOT NULL AND t.updated_at >= $1 AND t.updated_at < $2)
           ORDER BY t.order_no""",
        start,
        end,
        list(order_nos),
    )
