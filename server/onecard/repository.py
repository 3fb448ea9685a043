"""SQL for one-card accounts, the ledger and charges. Top-ups: topups/repository.py; device certificates and
offline rides: offline/repository.py."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

import asyncpg

# -- ledger ------------------------------------------------------------------------------------------------------


async def system_account(conn: asyncpg.Connection, code: str) -> int:
    """Id of a system ledger account, created on first use (never locked: system balances are derived)."""
    found = await conn.fetchval("SELECT id FROM ledger_accounts WHERE code = $1", code)
    if found is None:
        await conn.execute(
            "INSERT INTO ledger_accounts (code, kind) VALUES ($1, 'system') ON CONFLICT (code) DO NOTHING",
            code,
        )
        found = await conn.fetchval("SELECT id FROM ledger_accounts WHERE code = $1", code)
    return int(found)


async def create_wallet(conn: asyncpg.Connection, code: str, min_balance_fen: int) -> int:
    return int(
        await conn.fetchval(
            """INSERT INTO ledger_accounts (code, kind, balance_fen, min_balance_fen)
               VALUES ($1, 'wallet', 0, $2) RETURNING id""",
            code,
            min_balance_fen,
        )
    )


async def adjust_wallet(
    conn: asyncpg.Connection, wallet_id: int, delta_fen: int, floor_fen: int
) -> int | None:
    """Add `delta_fen` unless that would take the balance below `floor_fen`; the new balance, or None.

    One conditional UPDATE: the row lock it takes serialises concurrent payers, and the condition is checked on
    the row as it is after any concurrent change committed, so no read-then-write race exists.
    """
    return await conn.fetchval(
        """UPDATE ledger_accounts SET balance_fen = balance_fen + $2
           WHERE id = $1 AND kind = 'wallet' AND balance_fen + $2 >= $3 RETURNING balance_fen""",
        wallet_id,
        delta_fen,
        floor_fen,
    )


async def post_journal(
    conn: asyncpg.Connection,
    kind: str,
    reference: str,
    postings: Sequence[tuple[int, int]],
    at: dt.datetime,
) -> int | None:
    """Write a journal and its postings (account id, amount) in one statement; None if (kind, reference) exists."""
    return await conn.fetchval(
        """WITH j AS (
               INSERT INTO ledger_journals (kind, reference, posted_at) VALUES ($1, $2, $3)
               ON CONFLICT (kind, reference) DO NOTHING RETURNING id),
           p AS (
               INSERT INTO ledger_postings (journal_id, ledger_account_id, amount_fen, posted_at)
               SELECT j.id, x.account, x.amount, $3 FROM j, unnest($4::bigint[], $5::bigint[]) AS x(account, amount)
               RETURNING journal_id)
           SELECT id FROM j""",
        kind,
        reference,
        at,
        [a for a, _ in postings],
        [amount for _, amount in postings],
    )


async def wallet_postings_between(
    conn: asyncpg.Connection, wallet_id: int, start: dt.datetime, end: dt.datetime
) -> list[asyncpg.Record]:
    """A wallet's statement lines: its postings, except that an upload's offline-ride posting is shown as the
    rides it sums (one line per ride, at the posting's time)."""
    return await conn.fetch(
        """SELECT p.posted_at, p.amount_fen, j.kind, j.id AS journal_id, c.reason, c.app_id, t.order_no,
                  NULL::text AS terminal_id, NULL::timestamptz AS scanned_at, NULL::bigint AS terminal_fen
           FROM ledger_postings p
           JOIN ledger_journals j ON j.id = p.journal_id
           LEFT JOIN onecard_charges c ON c.journal_id = j.id
           LEFT JOIN onecard_topups t ON t.journal_id = j.id
           WHERE p.ledger_account_id = $1 AND p.posted_at >= $2 AND p.posted_at < $3 AND j.kind <> 'offline_ride'
           UNION ALL
           SELECT r.settled_at, -r.amount_fen, 'offline_ride', r.journal_id, NULL, NULL, NULL, r.terminal_id,
                  r.scanned_at, r.terminal_fen
           FROM onecard_offline_rides r JOIN onecard_accounts o ON o.id = r.onecard_account_id
           WHERE o.wallet_id = $1 AND r.status = 'settled' AND r.settled_at >= $2 AND r.settled_at < $3
           ORDER BY 1, 4, 9""",
        wallet_id,
        start,
        end,
    )


async def wallet_sum_before(conn: asyncpg.Connection, wallet_id: int, before: dt.datetime) -> int:
    return int(
        await conn.fetchval(
            "SELECT coalesce(sum(amount_fen), 0) FROM ledger_postings WHERE ledger_account_id = $1 AND posted_at < $2",
            wallet_id,
            before,
        )
    )


async def wallet_drift(conn: asyncpg.Connection) -> list[asyncpg.Record]:
    """Wallets whose materialised balance differs from the sum of their postings (should be none)."""
    return await conn.fetch(
        """SELECT a.id, a.code, a.balance_fen, coalesce(s.total, 0)::bigint AS postings_fen
           FROM ledger_accounts a
           LEFT JOIN (SELECT ledger_account_id, sum(amount_fen) AS total FROM ledger_postings
                      GROUP BY ledger_account_id) s ON s.ledger_account_id = a.id
           WHERE a.kind = 'wallet' AND a.balance_fen <> coalesce(s.total, 0)
           ORDER BY a.id"""
    )


async def rides_unposted(
    conn: asyncpg.Connection, start: dt.datetime, end: dt.datetime
) -> list[asyncpg.Record]:
    """(journal, wallet) pairs whose offline-ride posting differs from the settled rides linked to it."""
    return await conn.fetch(
        """WITH p AS (
               SELECT p.journal_id, p.ledger_account_id AS wallet, p.amount_fen
               FROM ledger_postings p
               JOIN ledger_journals j ON j.id = p.journal_id
               JOIN ledger_accounts a ON a.id = p.ledger_account_id
               WHERE j.kind = 'offline_ride' AND a.kind = 'wallet' AND p.posted_at >= $1 AND p.posted_at < $2),
           r AS (
               SELECT r.journal_id, o.wallet_id AS wallet, -sum(r.amount_fen) AS amount_fen
               FROM onecard_offline_rides r JOIN onecard_accounts o ON o.id = r.onecard_account_id
               WHERE r.status = 'settled' AND r.settled_at >= $1 AND r.settled_at < $2
               GROUP BY r.journal_id, o.wallet_id)
           SELECT coalesce(p.journal_id, r.journal_id) AS journal_id, coalesce(p.wallet, r.wallet) AS wallet,
                  coalesce(p.amount_fen, 0)::bigint AS posted_fen, coalesce(r.amount_fen, 0)::bigint AS rides_fen
           FROM p FULL JOIN r ON p.journal_id = r.journal_id AND p.wallet = r.wallet
           WHERE coalesce(p.amount_fen, 0) <> coalesce(r.amount_fen, 0)
           ORDER BY 1, 2""",
        start,
        end,
    )


async def unbalanced_journals(
    conn: asyncpg.Connection, start: dt.datetime, end: dt.datetime
) -> list[asyncpg.Record]:
    return await conn.fetch(
        """SELECT journal_id, sum(amount_fen)::bigint AS total FROM ledger_postings
           WHERE posted_at >= $1 AND posted_at < $2 GROUP BY journal_id HAVING sum(amount_fen) <> 0""",
        start,
        end,
    )


# -- accounts ----------------------------------------------------------------------------------------------------


async def issued_card(conn: asyncpg.Connection, id_number_index: bytes) -> bytes | None:
    """The blind index of the card issued to this identity, if the issuer's record has one."""
    found = await conn.fetchval(
        "SELECT card_index FROM issued_ss_cards WHERE id_number_index = $1", id_number_index
    )
    return None if found is None else bytes(found)


async def record_issued_card(
    conn: asyncpg.Connection, id_number_index: bytes, card_index: bytes, at: dt.datetime
) -> None:
    """The issuer's latest word wins: a reissued card replaces the lost one."""
    await conn.execute(
        """INSERT INTO issued_ss_cards (id_number_index, card_index, imported_at) VALUES ($1, $2, $3)
           ON CONFLICT (id_number_index) DO UPDATE SET card_index = EXCLUDED.card_index, imported_at = $3""",
        id_number_index,
        card_index,
        at,
    )


async def card_by_owner(conn: asyncpg.Connection, owner_account_id: int) -> asyncpg.Record | None:
    return await conn.fetchrow(
        """SELECT o.id, o.owner_account_id, o.ss_card_enc, o.ss_card_index, o.account_ref, o.wallet_id,
                  o.ecard_status, o.created_at, w.balance_fen, w.min_balance_fen
           FROM onecard_accounts o JOIN ledger_accounts w ON w.id = o.wallet_id
           WHERE o.owner_account_id = $1""",
        owner_account_id,
    )


async def card_by_index(conn: asyncpg.Connection, ss_card_index: bytes) -> asyncpg.Record | None:
    return await conn.fetchrow(
        "SELECT id, owner_account_id FROM onecard_accounts WHERE ss_card_index = $1", ss_card_index
    )


async def next_card_id(conn: asyncpg.Connection) -> int:
    # The id is taken first because the pseudonymous reference is derived from it.
    return int(await conn.fetchval("SELECT nextval(pg_get_serial_sequence('onecard_accounts', 'id'))"))


async def insert_card(
    conn: asyncpg.Connection,
    *,
    card_id: int,
    owner_account_id: int,
    ss_card_enc: bytes,
    ss_card_index: bytes,
    account_ref: bytes,
    wallet_id: int,
) -> None:
    await conn.execute(
        """INSERT INTO onecard_accounts (id, owner_account_id, ss_card_enc, ss_card_index, account_ref, wallet_id)
           VALUES ($1, $2, $3, $4, $5, $6)""",
        card_id,
        owner_account_id,
        ss_card_enc,
        ss_card_index,
        account_ref,
        wallet_id,
    )


# -- charges -----------------------------------------------------------------------------------------------------


async def insert_charge(
    conn: asyncpg.Connection,
    *,
    card_id: int,
    amount_fen: int,
    reason: str,
    app_id: str | None,
    journal_id: int,
    at: dt.datetime,
) -> int:
    return int(
        await conn.fetchval(
            """INSERT INTO onecard_charges (onecard_account_id, amount_fen, reason, app_id, journal_id, created_at)
               VALUES ($1, $2, $3, $4, $5, $6) RETURNING id""",
            card_id,
            amount_fen,
            reason,
            app_id,
            journal_id,
            at,
        )
    )


async def charge_for_update(conn: asyncpg.Connection, charge_id: int) -> asyncpg.Record | None:
    return await conn.fetchrow(
        """SELECT c.id, c.onecard_account_id, c.amount_fen, c.refunded_fen, c.app_id, o.wallet_id,
                  o.owner_account_id
           FROM onecard_charges c JOIN onecard_accounts o ON o.id = c.onecard_account_id
           WHERE c.id = $1 FOR UPDATE OF c""",
        charge_id,
    )


async def add_refunded(conn: asyncpg.Connection, charge_id: int, amount_fen: int) -> int:
    return int(
        await conn.fetchval(
            "UPDATE onecard_charges SET refunded_fen = refunded_fen + $2 WHERE id = $1 RETURNING refunded_fen",
            charge_id,
            amount_fen,
        )
    )
