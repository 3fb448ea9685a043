"""SQL for terminals, scene policies and scans."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import asyncpg

_TERMINAL = "id, name, kind, scene, public_key, enabled, session_epoch, created_at"

SCAN_COLUMNS = (
    "id",
    "terminal_id",
    "received_at",
    "scanned_at",
    "mode",
    "credential_type",
    "issuer",
    "subject_ref",
    "account_id",
    "colour",
    "result",
    "reason",
    "repeat",
)


async def insert_terminal(
    conn: asyncpg.Connection,
    *,
    id: str,
    name: str,
    kind: str,
    scene: str,
    public_key: bytes,
    at: datetime,
    by: str,
) -> asyncpg.Record:
    return await conn.fetchrow(
        f"""INSERT INTO terminals (id, name, kind, scene, public_key, created_at, created_by)
            VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING {_TERMINAL}""",  # noqa: S608
        id,
        name,
        kind,
        scene,
        public_key,
        at,
        by,
    )


async def get_terminal(conn: asyncpg.Connection, terminal_id: str) -> asyncpg.Record | None:
    return await conn.fetchrow(f"SELECT {_TERMINAL} FROM terminals WHERE id = $1", terminal_id)  # noqa: S608


async def list_terminals(conn: asyncpg.Connection) -> list[asyncpg.Record]:
    return await conn.fetch(f"SELECT {_TERMINAL} FROM terminals ORDER BY created_at, id")  # noqa: S608


async def disable_terminal(conn: asyncpg.Connection, terminal_id: str, at: datetime) -> int | None:
    """Disable and move to a new session epoch; returns the epoch whose tokens must die (None: not found)."""
    value = await conn.fetchval(
        """UPDATE terminals SET enabled = false, disabled_at = $2, session_epoch = session_epoch + 1
           WHERE id = $1 RETURNING session_epoch - 1""",
        terminal_id,
        at,
    )
    return None if value is None else int(value)


async def enable_terminal(conn: asyncpg.Connection, terminal_id: str) -> bool:
    result = await conn.execute(
        "UPDATE terminals SET enabled = true, disabled_at = NULL WHERE id = $1", terminal_id
    )
    return bool(result.endswith(" 1"))


async def list_policies(conn: asyncpg.Connection) -> list[asyncpg.Record]:
    return await conn.fetch(
        "SELECT kind, scene, allowed_colours, show_name, replay, accept_ride_codes FROM scene_policies ORDER BY kind, scene"
    )


async def upsert_policy(conn: asyncpg.Connection, **f: Any) -> None:
    await conn.execute(
        """INSERT INTO scene_policies (kind, scene, allowed_colours, show_name, replay, accept_ride_codes,
                                       updated_at, updated_by)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
           ON CONFLICT (kind, scene) DO UPDATE SET allowed_colours = EXCLUDED.allowed_colours,
               show_name = EXCLUDED.show_name, replay = EXCLUDED.replay,
               accept_ride_codes = EXCLUDED.accept_ride_codes, updated_at = EXCLUDED.updated_at,
               updated_by = EXCLUDED.updated_by""",
        f["kind"],
        f["scene"],
        f["allowed_colours"],
        f["show_name"],
        f["replay"],
        f["accept_ride_codes"],
        f["at"],
        f["by"],
    )


async def copy_scans(conn: asyncpg.Connection, rows: Sequence[tuple[Any, ...]]) -> None:
    """Many online scans in one COPY: the group commit's single round trip."""
    await conn.copy_records_to_table("scans", records=rows, columns=SCAN_COLUMNS)


async def claim_offline_records(
    conn: asyncpg.Connection,
    terminal_id: str,
    received_at: datetime,
    rows: Sequence[tuple[uuid.UUID, str, datetime, int, str, str]],
) -> set[str]:
    """Insert one row per (scan id, record id, scanned at, amount, clock source, local result) unless this
    terminal already uploaded that record id; returns the record ids inserted. One statement per batch.

    Rows go in record-id order, so two uploads sharing records lock the unique index in the same order; a twin
    upload running concurrently on another worker waits on the index, then sees the conflict.
    """
    if not rows:
        return set()
    ordered = sorted(rows, key=lambda r: r[1])
    ids, records, scanned, amounts, clocks, locals_ = (list(c) for c in zip(*ordered, strict=True))
    inserted = await conn.fetch(
        """INSERT INTO scans (id, terminal_id, received_at, scanned_at, mode, result, reason, record_id, amount_fen,
                              clock_source, local_result)
           SELECT u.id, $1, $2, u.scanned_at, 'offline', 'reject', 'scan.pending', u.record_id, u.amount_fen,
                  u.clock_source, u.local_result
           FROM unnest($3::uuid[], $4::text[], $5::timestamptz[], $6::int[], $7::text[], $8::text[])
                WITH ORDINALITY AS u (id, record_id, scanned_at, amount_fen, clock_source, local_result, n)
           ORDER BY u.n
           ON CONFLICT (terminal_id, record_id) WHERE record_id IS NOT NULL DO NOTHING RETURNING record_id""",
        terminal_id,
        received_at,
        ids,
        records,
        scanned,
        amounts,
        clocks,
        locals_,
    )
    return {r["record_id"] for r in inserted}


async def settle_offline_records(conn: asyncpg.Connection, rows: Sequence[tuple[Any, ...]]) -> None:
    """Write each claimed record's decision: (scan id, credential type, issuer, subject ref, account id, colour,
    result, reason, settlement); one statement per batch."""
    if not rows:
        return
    columns = [list(c) for c in zip(*rows, strict=True)]
    await conn.execute(
        """UPDATE scans s SET credential_type = u.credential_type, issuer = u.issuer, subject_ref = u.subject_ref,
                              account_id = u.account_id, colour = u.colour, result = u.result, reason = u.reason,
                              settlement = u.settlement
           FROM unnest($1::uuid[], $2::text[], $3::int[], $4::bytea[], $5::bigint[], $6::text[], $7::text[],
                       $8::text[], $9::text[])
                AS u (id, credential_type, issuer, subject_ref, account_id, colour, result, reason, settlement)
           WHERE s.id = u.id""",
        *columns,
    )


async def claim_replays(
    conn: asyncpg.Connection, claims: Sequence[tuple[bytes, uuid.UUID]], at: datetime
) -> set[bytes]:
    """Claim each (replay key, scan id) durably unless the key was spent before; returns the keys claimed.
    Keys must be distinct; they go in key order so concurrent uploads lock in the same order."""
    if not claims:
        return set()
    ordered = sorted(claims)
    keys, scan_ids = [k for k, _ in ordered], [s for _, s in ordered]
    claimed = await conn.fetch(
        """INSERT INTO scan_replay_claims (key, scan_id, claimed_at)
           SELECT u.key, u.scan_id, $3 FROM unnest($1::bytea[], $2::uuid[]) WITH ORDINALITY AS u (key, scan_id, n)
           ORDER BY u.n
           ON CONFLICT DO NOTHING RETURNING key""",
        keys,
        scan_ids,
        at,
    )
    return {bytes(r["key"]) for r in claimed}


async def scans_of_account(conn: asyncpg.Connection, account_id: int, limit: int) -> list[asyncpg.Record]:
    return await conn.fetch(
        """SELECT s.id, s.received_at, s.result, s.reason, s.colour, t.name, t.kind, t.scene
           FROM scans s JOIN terminals t ON t.id = s.terminal_id
           WHERE s.account_id = $1 ORDER BY s.received_at DESC LIMIT $2""",
        account_id,
        limit,
    )
