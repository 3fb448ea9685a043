"""SQL for terminals, scene policies and scans."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import asyncpg
from msgspec.structs import astuple

from server.terminals.scans.record import OFFLINE_ONLY, StoredScan

_TERMINAL = (
    "id, name, kind, scene, public_key, enabled, session_epoch, created_at, clock_offset_ms, clock_checked_at,"
    " unit, last_signed_in_at"
)

# The one place a scan's record (scans/record.py) meets SQL: its fields are the columns of `scans`, in order; an
# online scan's row leaves out the offline fields, which come last.
OFFLINE_SCAN_COLUMNS: tuple[str, ...] = StoredScan.__struct_fields__
SCAN_COLUMNS: tuple[str, ...] = OFFLINE_SCAN_COLUMNS[: -len(OFFLINE_ONLY)]
if OFFLINE_SCAN_COLUMNS[len(SCAN_COLUMNS) :] != OFFLINE_ONLY:
    raise AssertionError("StoredScan declares its offline fields last")
_SQL_TYPES = {
    "id": "uuid",
    "terminal_id": "text",
    "received_at": "timestamptz",
    "scanned_at": "timestamptz",
    "mode": "text",
    "credential_type": "text",
    "issuer": "integer",
    "subject_ref": "bytea",
    "account_id": "bigint",
    "colour": "text",
    "result": "text",
    "reason": "text",
    "repeat": "boolean",
    "clock_offset_ms": "bigint",
    "stop": "text",
    "tap": "text",
}
"""The online columns' types, for the arrays of `insert_scans_claiming`."""


def _values(scans: Sequence[StoredScan], columns: int) -> list[tuple[Any, ...]]:
    return [astuple(scan)[:columns] for scan in scans]


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
    unit: str | None = None,
) -> asyncpg.Record:
    return await conn.fetchrow(
        f"""INSERT INTO terminals (id, name, kind, scene, public_key, created_at, created_by, unit)
            VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING {_TERMINAL}""",  # noqa: S608
        id,
        name,
        kind,
        scene,
        public_key,
        at,
        by,
        unit,
    )


async def insert_enrolment(
    conn: asyncpg.Connection,
    *,
    code_hash: bytes,
    name: str,
    kind: str,
    scene: str,
    at: datetime,
    by: str,
    expires_at: datetime,
    unit: str | None = None,
) -> None:
    await conn.execute(
        """INSERT INTO terminal_enrolments (code_hash, name, kind, scene, created_at, created_by, expires_at)
           VALUES ($1, $2, $3, $4, $5, $6, $7)""",
        code_hash,
        name,
        kind,
        scene,
        at,
        by,
        expires_at,
    )
    if unit is not None:
        await conn.execute(
            "INSERT INTO terminal_enrolment_units (code_hash, unit) VALUES ($1, $2)", code_hash, unit
        )


async def claim_enrolment(conn: asyncpg.Connection, code_hash: bytes, at: datetime) -> asyncpg.Record | None:
    """Mark an unused, unexpired code used (the row lock makes two enrolments with one code take turns: the
    second finds it used); its name, kind, scene and unit, or None."""
    return await conn.fetchrow(
        """UPDATE terminal_enrolments SET used_at = $2
           WHERE code_hash = $1 AND used_at IS NULL AND expires_at > $2
           RETURNING name, kind, scene, created_by,
                     (SELECT unit FROM terminal_enrolment_units u WHERE u.code_hash = $1) AS unit""",
        code_hash,
        at,
    )


async def set_enrolment_terminal(conn: asyncpg.Connection, code_hash: bytes, terminal_id: str) -> None:
    await conn.execute(
        "UPDATE terminal_enrolments SET terminal_id = $2 WHERE code_hash = $1", code_hash, terminal_id
    )


async def get_terminal(conn: asyncpg.Connection, terminal_id: str) -> asyncpg.Record | None:
    return await conn.fetchrow(f"SELECT {_TERMINAL} FROM terminals WHERE id = $1", terminal_id)  # noqa: S608


async def record_sign_in(conn: asyncpg.Connection, terminal_id: str, at: datetime) -> None:
    await conn.execute("UPDATE terminals SET last_signed_in_at = $2 WHERE id = $1", terminal_id, at)


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


async def record_clock(conn: asyncpg.Connection, terminal_id: str, offset_ms: int, at: datetime) -> None:
    """What the terminal's clock said against ours at its time sync."""
    await conn.execute(
        "UPDATE terminals SET clock_offset_ms = $2, clock_checked_at = $3 WHERE id = $1",
        terminal_id,
        offset_ms,
        at,
    )


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


async def copy_scans(conn: asyncpg.Connection, scans: Sequence[StoredScan], *, offline: bool = False) -> None:
    """Many scans in one COPY: online, the group commit's single statement; offline, an upload's records."""
    if scans:
        columns = OFFLINE_SCAN_COLUMNS if offline else SCAN_COLUMNS
        await conn.copy_records_to_table("scans", records=_values(scans, len(columns)), columns=columns)


_CLAIMING_INSERT = """
WITH input AS (
    SELECT * FROM unnest({arrays}, ${claim}::bytea[]) AS i ({columns}, claim)
), claimed AS (
    INSERT INTO scan_replay_claims (key, scan_id, claimed_at)
    SELECT claim, id, received_at FROM input WHERE claim IS NOT NULL ORDER BY claim
    ON CONFLICT DO NOTHING RETURNING scan_id
), decided AS (
    SELECT i.*, i.claim IS NOT NULL AND c.scan_id IS NULL AS spent
    FROM input i LEFT JOIN claimed c ON c.scan_id = i.id
), stored AS (
    INSERT INTO scans ({columns})
    SELECT {picked} FROM decided
)
SELECT id FROM decided WHERE spent
""".format(  # noqa: S608 - built from the column constants above, never from input
    arrays=", ".join(f"${n}::{_SQL_TYPES[c]}[]" for n, c in enumerate(SCAN_COLUMNS, 1)),
    claim=len(SCAN_COLUMNS) + 1,
    columns=", ".join(SCAN_COLUMNS),
    picked=", ".join(
        {
            "result": "CASE WHEN spent THEN 'reject' ELSE result END",
            "reason": "CASE WHEN spent THEN 'scan.replayed' ELSE reason END",
        }.get(c, c)
        for c in SCAN_COLUMNS
    ),
)


async def insert_scans_claiming(
    conn: asyncpg.Connection, scans: Sequence[StoredScan], claims: Sequence[bytes | None]
) -> set[uuid.UUID]:
    """Online scans with the replay key each one spends (None: spends none), in ONE statement: a scan's claim and
    its record commit together or not at all. A scan whose key was claimed before, online or offline, is stored
    as `reject` / `scan.replayed`; returns those scans' ids."""
    columns = [list(column) for column in zip(*_values(scans, len(SCAN_COLUMNS)), strict=True)]
    spent = await conn.fetch(_CLAIMING_INSERT, *columns, list(claims))
    return {r["id"] for r in spent}


async def lock_offline_records(conn: asyncpg.Connection, terminal_id: str) -> None:
    """A transaction lock on one terminal's offline records: its uploads take turns."""
    await conn.execute("SELECT pg_advisory_xact_lock(hashtext('scan_records'), hashtext($1))", terminal_id)


async def stored_offline_records(
    conn: asyncpg.Connection, terminal_id: str, record_ids: Sequence[str]
) -> dict[str, tuple[str, str | None]]:
    """The (result, reason) of each of these record ids this terminal has uploaded before."""
    if not record_ids:
        return {}
    rows = await conn.fetch(
        "SELECT record_id, result, reason FROM scans WHERE terminal_id = $1 AND record_id = ANY($2::text[])",
        terminal_id,
        list(record_ids),
    )
    return {r["record_id"]: (r["result"], r["reason"]) for r in rows}


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


_CLAIM_PRUNING_LOCK = "hashtext('scan_replay_claims')"


async def try_lock_claim_pruning(conn: asyncpg.Connection) -> bool:
    """The session lock one node holds while it prunes claims; False when another node holds it."""
    return bool(await conn.fetchval(f"SELECT pg_try_advisory_lock({_CLAIM_PRUNING_LOCK})"))


async def unlock_claim_pruning(conn: asyncpg.Connection) -> None:
    await conn.execute(f"SELECT pg_advisory_unlock({_CLAIM_PRUNING_LOCK})")


async def prune_replay_claims(conn: asyncpg.Connection, before: datetime, limit: int) -> int:
    """Delete up to `limit` of the oldest claims taken before `before`; returns how many went."""
    status = await conn.execute(
        """DELETE FROM scan_replay_claims WHERE key IN (
               SELECT key FROM scan_replay_claims WHERE claimed_at < $1 ORDER BY claimed_at LIMIT $2)""",
        before,
        limit,
    )
    return int(status.split()[-1])


async def scans_of_account(conn: asyncpg.Connection, account_id: int, limit: int) -> list[asyncpg.Record]:
    return await conn.fetch(
        """SELECT s.id, s.received_at, s.result, s.reason, s.colour, t.name, t.kind, t.scene
           FROM scans s JOIN terminals t ON t.id = s.terminal_id
           WHERE s.account_id = $1 ORDER BY s.received_at DESC LIMIT $2""",
        account_id,
        limit,
    )
