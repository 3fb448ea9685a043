"""SQL for one-card accounts, the ledger, top-ups, charges, device certificates and offline rides."""

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


# -- device certificates -----------------------------------------------------------------------------------------


async def count_active_certificates(conn: asyncpg.Connection, card_id: int, now: dt.datetime) -> int:
    return int(
        await conn.fetchval(
            """SELECT count(*) FROM onecard_device_certificates
               WHERE onecard_account_id = $1 AND revoked_at IS NULL AND expires_at > $2""",
            card_id,
            now,
        )
    )


async def lock_card(conn: asyncpg.Connection, card_id: int) -> None:
    # Serialises certificate issuance per account so the active-certificate cap cannot be raced past.
    await conn.execute("SELECT 1 FROM onecard_accounts WHERE id = $1 FOR UPDATE", card_id)


async def insert_certificate(
    conn: asyncpg.Connection,
    *,
    serial: bytes,
    card_id: int,
    issuer: int,
    key_id: str,
    device_public_key: bytes,
    issued_at: dt.datetime,
    expires_at: dt.datetime,
    max_offline_uses: int,
    max_offline_amount_fen: int,
) -> int:
    return int(
        await conn.fetchval(
            """INSERT INTO onecard_device_certificates
                   (serial, onecard_account_id, issuer, key_id, device_public_key, issued_at, expires_at,
                    max_offline_uses, max_offline_amount_fen)
               VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING id""",
            serial,
            card_id,
            issuer,
            key_id,
            device_public_key,
            issued_at,
            expires_at,
            max_offline_uses,
            max_offline_amount_fen,
        )
    )


async def revoke_certificate(
    conn: asyncpg.Connection, cert_id: int, card_id: int, at: dt.datetime, reason: str
) -> asyncpg.Record | None:
    """Revoke the account's certificate; returns it (with revoked_at as stored) or None if it is not theirs."""
    return await conn.fetchrow(
        """UPDATE onecard_device_certificates
           SET revoked_at = coalesce(revoked_at, $3), revoke_reason = coalesce(revoke_reason, $4)
           WHERE id = $1 AND onecard_account_id = $2
           RETURNING id, serial, issuer, expires_at, revoked_at, (revoked_at = $3) AS newly""",
        cert_id,
        card_id,
        at,
        reason,
    )


async def list_certificates(conn: asyncpg.Connection, card_id: int) -> list[asyncpg.Record]:
    return await conn.fetch(
        """SELECT id, serial, issued_at, expires_at, max_offline_uses, max_offline_amount_fen, offline_uses,
                  offline_amount_fen, revoked_at
           FROM onecard_device_certificates WHERE onecard_account_id = $1 ORDER BY id""",
        card_id,
    )


# -- offline rides -----------------------------------------------------------------------------------------------


async def certificates_for_update(conn: asyncpg.Connection, serials: Sequence[bytes]) -> list[asyncpg.Record]:
    """Lock the certificates in id order (every settler locks in the same order, so none deadlock)."""
    return await conn.fetch(
        """SELECT c.id, c.serial, c.onecard_account_id, c.issued_at, c.expires_at, c.max_offline_uses,
                  c.max_offline_amount_fen, c.offline_uses, c.offline_amount_fen, c.revoked_at,
                  o.account_ref, o.wallet_id, o.owner_account_id
           FROM onecard_device_certificates c JOIN onecard_accounts o ON o.id = c.onecard_account_id
           WHERE c.serial = ANY($1::bytea[]) ORDER BY c.id FOR UPDATE OF c""",
        list(serials),
    )


async def lock_terminal_rides(conn: asyncpg.Connection, terminal_ids: Sequence[str]) -> None:
    """Transaction locks on the offline rides of these terminals, taken in the given (sorted) order."""
    await conn.execute(
        """SELECT pg_advisory_xact_lock(hashtext('onecard_rides'), hashtext(t))
           FROM unnest($1::text[]) WITH ORDINALITY AS x(t, n) ORDER BY n""",
        list(terminal_ids),
    )


async def stored_rides(
    conn: asyncpg.Connection, keys: Sequence[tuple[str, str]]
) -> dict[tuple[str, str], asyncpg.Record]:
    if not keys:
        return {}
    rows = await conn.fetch(
        """SELECT r.terminal_id, r.record_id, r.status, r.reason FROM onecard_offline_rides r
           JOIN unnest($1::text[], $2::text[]) AS k(t, rec) ON r.terminal_id = k.t AND r.record_id = k.rec""",
        [k[0] for k in keys],
        [k[1] for k in keys],
    )
    return {(r["terminal_id"], r["record_id"]): r for r in rows}


async def wallets_for_update(
    conn: asyncpg.Connection, wallet_ids: Sequence[int]
) -> dict[int, asyncpg.Record]:
    rows = await conn.fetch(
        """SELECT id, balance_fen, min_balance_fen FROM ledger_accounts
           WHERE id = ANY($1::bigint[]) ORDER BY id FOR UPDATE""",
        list(wallet_ids),
    )
    return {r["id"]: r for r in rows}


_RIDE_COLUMNS = (
    "terminal_id",
    "record_id",
    "certificate_serial",
    "onecard_account_id",
    "amount_fen",
    "scanned_at",
    "status",
    "reason",
    "terminal_fen",
    "journal_id",
    "settled_at",
)


async def record_rides(
    conn: asyncpg.Connection,
    rows: Sequence[tuple[str, str, bytes, int, int, dt.datetime, str, str | None, int | None]],
    postings: Sequence[tuple[int, int]],
    *,
    reference: str,
    at: dt.datetime,
) -> None:
    """Store rides (terminal, record, serial, account, amount, scanned_at, status, reason, what the terminal asked
    when settlement re-priced it to another amount) and, when `postings`
    (ledger account, amount) is not empty, their journal, which the settled rides link to. Two statements: the
    journal with its postings, then the rides by COPY (binary rows). One INSERT of the rides as unnested arrays
    cost more: settling 10,000 rides took 162-164 ms that way, 134-138 ms this way (bench_onecard_settlement)."""
    if not rows:
        return
    journal_id = None
    if postings:
        journal_id = await conn.fetchval(
            """WITH j AS (
                   INSERT INTO ledger_journals (kind, reference, posted_at) VALUES ('offline_ride', $1, $4)
                   RETURNING id),
               p AS (
                   INSERT INTO ledger_postings (journal_id, ledger_account_id, amount_fen, posted_at)
                   SELECT j.id, x.account, x.amount, $4 FROM j, unnest($2::bigint[], $3::bigint[]) AS x(account, amount))
               SELECT id FROM j""",
            reference,
            [account for account, _ in postings],
            [amount for _, amount in postings],
            at,
        )
    await conn.copy_records_to_table(
        "onecard_offline_rides",
        records=[(*row, journal_id if row[6] == "settled" else None, at) for row in rows],
        columns=_RIDE_COLUMNS,
    )


async def add_to_wallets(conn: asyncpg.Connection, deltas: dict[int, int]) -> None:
    if not deltas:
        return
    await conn.execute(
        """UPDATE ledger_accounts a SET balance_fen = a.balance_fen + d.delta
           FROM unnest($1::bigint[], $2::bigint[]) AS d(id, delta) WHERE a.id = d.id""",
        list(deltas),
        list(deltas.values()),
    )


async def add_certificate_use(conn: asyncpg.Connection, usage: dict[int, tuple[int, int]]) -> None:
    if not usage:
        return
    await conn.execute(
        """UPDATE onecard_device_certificates c
           SET offline_uses = c.offline_uses + u.uses, offline_amount_fen = c.offline_amount_fen + u.amount
           FROM unnest($1::bigint[], $2::int[], $3::bigint[]) AS u(id, uses, amount) WHERE c.id = u.id""",
        list(usage),
        [u for u, _ in usage.values()],
        [a for _, a in usage.values()],
    )
