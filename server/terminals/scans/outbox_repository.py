"""The SQL of the scan outbox (`scan_outbox`): rows written by an offline upload, claimed, delivered or failed by the
deliverer in outbox.py."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Sequence

import asyncpg
import msgspec

from server.terminals.events import ScanEvent


class OutboxRow(msgspec.Struct, frozen=True):
    scan_id: uuid.UUID
    event: ScanEvent
    attempt: int


async def insert(
    conn: asyncpg.Connection, events: Sequence[ScanEvent], now: dt.datetime, lease_until: dt.datetime | None
) -> None:
    """The upload's rows, in its transaction; leased by the uploading process when it delivers them live."""
    if events:  # one COPY, whatever the upload's size
        await conn.copy_records_to_table(
            "scan_outbox",
            columns=("scan_id", "terminal_id", "scanned_at", "event", "created_at", "run_at", "lease_until"),
            records=[
                (
                    uuid.UUID(e.scan_id),
                    e.terminal_id,
                    e.scanned_at,
                    msgspec.json.encode(e).decode(),
                    now,
                    now,
                    lease_until,
                )
                for e in events
            ],
        )


async def claim(
    conn: asyncpg.Connection, due: dt.datetime, now: dt.datetime, lease_until: dt.datetime, limit: int
) -> list[OutboxRow]:
    """Up to `limit` rows, each the earliest pending row of its terminal, not leased (or its lease expired) and
    due by `due`; leased until `lease_until`, the try counted. Rows another node is claiming are skipped; a
    terminal whose head row is leased or waiting to be retried has nothing claimable (its order is kept)."""
    rows = await conn.fetch(
        "UPDATE scan_outbox o SET lease_until = $3, attempt = o.attempt + 1"
        " FROM (SELECT h.scan_id FROM scan_outbox h"
        "       WHERE h.status = 'pending' AND h.run_at <= $1 AND (h.lease_until IS NULL OR h.lease_until <= $2)"
        "       AND NOT EXISTS (SELECT 1 FROM scan_outbox p WHERE p.status = 'pending'"
        "                       AND p.terminal_id = h.terminal_id"
        "                       AND (p.scanned_at, p.scan_id) < (h.scanned_at, h.scan_id))"
        "       ORDER BY h.run_at LIMIT $4 FOR UPDATE SKIP LOCKED) head"
        " WHERE o.scan_id = head.scan_id"
        " RETURNING o.scan_id, o.event, o.attempt",
        due,
        now,
        lease_until,
        limit,
    )
    return [
        OutboxRow(r["scan_id"], msgspec.json.decode(r["event"], type=ScanEvent), r["attempt"]) for r in rows
    ]


async def delivered(conn: asyncpg.Connection, scan_id: uuid.UUID) -> None:
    await conn.execute("DELETE FROM scan_outbox WHERE scan_id = $1", scan_id)


async def failed(
    conn: asyncpg.Connection,
    scan_id: uuid.UUID,
    *,
    attempt: int,
    error: str,
    run_at: dt.datetime | None,
) -> None:
    """Tried again at `run_at`; None: given up (kept as `failed`, the terminal's later rows go on)."""
    await conn.execute(
        "UPDATE scan_outbox SET attempt = $2, last_error = $3, lease_until = NULL,"
        " run_at = coalesce($4, run_at), status = CASE WHEN $4::timestamptz IS NULL THEN 'failed' ELSE status END"
        " WHERE scan_id = $1",
        scan_id,
        attempt,
        error[:500],
        run_at,
    )


async def release(conn: asyncpg.Connection, scan_ids: Sequence[uuid.UUID]) -> None:
    """Hand rows the live path will not deliver to the deliverers (their lease dropped)."""
    if scan_ids:
        await conn.execute(
            "UPDATE scan_outbox SET lease_until = NULL WHERE scan_id = ANY($1::uuid[])", scan_ids
        )
