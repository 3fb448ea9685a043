"""SQL for device certificates and offline rides."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Sequence

import asyncpg

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


async def certificate_owners(conn: asyncpg.Connection, serials: Sequence[bytes]) -> dict[bytes, int]:
    """The owner of the one-card each device certificate was issued for, by serial (unknown serials left out)."""
    rows = await conn.fetch(
        """SELECT c.serial, o.owner_account_id
           FROM onecard_device_certificates c JOIN onecard_accounts o ON o.id = c.onecard_account_id
           WHERE c.serial = ANY($1::bytea[])""",
        list(serials),
    )
    return {bytes(r["serial"]): r["owner_account_id"] for r in rows}


async def partner_certificate_use(
    conn: asyncpg.Connection, certificates: Sequence[tuple[int, bytes]]
) -> dict[tuple[int, bytes], tuple[int, int]]:
    """Partner counties' certificates, each named by (issuer, serial): two counties may issue the same serial,
    and each certificate has its own limits. Take their transaction locks (sorted order, after the terminals'
    ride locks), then what their settled rides used so far: (issuer, serial) -> (rides, amount)."""
    if not certificates:
        return {}
    ordered = sorted(certificates)
    issuers, serials = [i for i, _ in ordered], [s for _, s in ordered]
    await conn.execute(
        """SELECT pg_advisory_xact_lock(hashtext('onecard_partner_cert'), hashtext(i::text || ':' || encode(s, 'hex')))
           FROM unnest($1::integer[], $2::bytea[]) WITH ORDINALITY AS x(i, s, n) ORDER BY n""",
        issuers,
        serials,
    )
    rows = await conn.fetch(
        """SELECT r.partner_issuer, r.certificate_serial, count(*) AS rides, sum(r.amount_fen) AS amount
           FROM onecard_offline_rides r
           JOIN unnest($1::integer[], $2::bytea[]) AS k(i, s)
             ON r.partner_issuer = k.i AND r.certificate_serial = k.s
           WHERE r.status = 'settled'
           GROUP BY r.partner_issuer, r.certificate_serial""",
        issuers,
        serials,
    )
    return {
        (int(r["partner_issuer"]), bytes(r["certificate_serial"])): (int(r["rides"]), int(r["amount"]))
        for r in rows
    }


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
    "scan_id",
    "app_id",
    "partner_issuer",
    "journal_id",
    "settled_at",
)


RideRow = tuple[
    str,
    str,
    bytes,
    int | None,
    int,
    dt.datetime,
    str,
    str | None,
    int | None,
    uuid.UUID | None,
    str | None,
    int | None,
]
"""An offline ride to store: terminal, record, serial, account (None for a partner county's ride), amount,
scanned_at, status, reason, what the terminal asked (when re-priced to another amount), the scan's id, the app
bound to its scene and the partner county's issuer that owes it (None for our own one-cards' rides)."""


async def record_rides(
    conn: asyncpg.Connection,
    rows: Sequence[RideRow],
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
        records=[(*row, journal_id if row[6] == "settled" and row[11] is None else None, at) for row in rows],
        columns=_RIDE_COLUMNS,
    )


async def ride_for_refund(conn: asyncpg.Connection, scan_id: uuid.UUID, app_id: str) -> asyncpg.Record | None:
    """A settled offline ride of this app's scene, locked, with the wallet it was charged to."""
    return await conn.fetchrow(
        """SELECT r.amount_fen, r.refunded_fen, o.wallet_id, o.id AS onecard_account_id
           FROM onecard_offline_rides r JOIN onecard_accounts o ON o.id = r.onecard_account_id
           WHERE r.scan_id = $1 AND r.app_id = $2 AND r.status = 'settled' FOR UPDATE OF r""",
        scan_id,
        app_id,
    )


async def add_ride_refunded(conn: asyncpg.Connection, scan_id: uuid.UUID, amount_fen: int) -> int:
    value = await conn.fetchval(
        """UPDATE onecard_offline_rides SET refunded_fen = refunded_fen + $2 WHERE scan_id = $1
           RETURNING refunded_fen""",
        scan_id,
        amount_fen,
    )
    return int(value)


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
