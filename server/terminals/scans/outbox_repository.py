"""The SQL of the scan outbox: the rows an offline upload writes (`scan_outbox`) and each terminal's turn
(`scan_outbox_terminals`), claimed, delivered or failed by the deliverers in outbox.py."""

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
    """Tries of the app so far."""


class Turn(msgspec.Struct, frozen=True):
    """A terminal held by one deliverer: it alone delivers the terminal's rows until it lets go."""

    terminal_id: str
    token: uuid.UUID


class LiveTake(msgspec.Struct, frozen=True):
    """How an upload writes its terminal's turn (insert): taken by the uploading process until `run_at` with
    `token`, or (no token: under the hold hook, or nobody to deliver live) due to the deliverers at `run_at`."""

    run_at: dt.datetime
    token: uuid.UUID | None


async def insert(
    conn: asyncpg.Connection,
    terminal_id: str,
    events: Sequence[ScanEvent],
    now: dt.datetime,
    *,
    run_at: dt.datetime,
    token: uuid.UUID | None,
) -> Turn | None:
    """The upload's rows, in its transaction, and the terminal's turn. With a `token`, the uploading process takes
    the terminal until `run_at` if nobody holds it and no earlier row waits for its retry (the turn returned):
    it delivers after the commit. Else the terminal's turn is left as it is (a new one is due at `run_at`)."""
    if not events:
        return None
    await conn.copy_records_to_table(  # one COPY, whatever the upload's size
        "scan_outbox",
        columns=("scan_id", "terminal_id", "scanned_at", "event", "created_at"),
        records=[
            (uuid.UUID(e.scan_id), e.terminal_id, e.scanned_at, msgspec.json.encode(e).decode(), now)
            for e in events
        ],
    )
    # DO UPDATE, not DO NOTHING: the row stays locked to the commit, so a holder letting go of the terminal
    # (finish) waits and then sees these rows.
    taken = await conn.fetchval(
        "INSERT INTO scan_outbox_terminals AS t (terminal_id, run_at, lease_token) VALUES ($1, $2, $3)"
        " ON CONFLICT (terminal_id) DO UPDATE SET"
        "  run_at = CASE WHEN $3::uuid IS NOT NULL AND t.run_at <= $4 THEN excluded.run_at ELSE t.run_at END,"
        "  lease_token = CASE WHEN $3::uuid IS NOT NULL AND t.run_at <= $4"
        "                THEN excluded.lease_token ELSE t.lease_token END"
        " RETURNING coalesce(t.lease_token = $3::uuid, false)",
        terminal_id,
        run_at,
        token,
        now,
    )
    return Turn(terminal_id, token) if taken and token is not None else None


async def claim(
    conn: asyncpg.Connection, due: dt.datetime, lease_until: dt.datetime, limit: int
) -> list[Turn]:
    """Up to `limit` terminals due by `due` (nobody holds them, or their holder's lease ended; not waiting for a
    retry), each held until `lease_until` under a fresh token. Terminals another process is claiming are
    skipped."""
    rows = await conn.fetch(
        "UPDATE scan_outbox_terminals t SET run_at = $2, lease_token = gen_random_uuid()"
        " FROM (SELECT terminal_id FROM scan_outbox_terminals WHERE run_at <= $1"
        "       ORDER BY run_at LIMIT $3 FOR UPDATE SKIP LOCKED) due"
        " WHERE t.terminal_id = due.terminal_id"
        " RETURNING t.terminal_id, t.lease_token",
        due,
        lease_until,
        limit,
    )
    return [Turn(r["terminal_id"], r["lease_token"]) for r in rows]


async def head(conn: asyncpg.Connection, terminal_id: str) -> OutboxRow | None:
    """The terminal's earliest pending row (scan time), the next its holder delivers."""
    r = await conn.fetchrow(
        "SELECT scan_id, event, attempt FROM scan_outbox WHERE terminal_id = $1 AND status = 'pending'"
        " ORDER BY scanned_at, scan_id LIMIT 1",
        terminal_id,
    )
    if r is None:
        return None
    return OutboxRow(r["scan_id"], msgspec.json.decode(r["event"], type=ScanEvent), r["attempt"])


async def delivered(conn: asyncpg.Connection, scan_id: uuid.UUID) -> None:
    await conn.execute("DELETE FROM scan_outbox WHERE scan_id = $1", scan_id)


async def failed(
    conn: asyncpg.Connection, scan_id: uuid.UUID, *, attempt: int, error: str, final: bool
) -> None:
    """A try that failed; `final`: given up (kept as `failed`, the terminal's later rows go on)."""
    await conn.execute(
        "UPDATE scan_outbox SET attempt = $2, last_error = $3,"
        " status = CASE WHEN $4 THEN 'failed' ELSE status END WHERE scan_id = $1",
        scan_id,
        attempt,
        error[:500],
        final,
    )


async def renew(conn: asyncpg.Connection, turn: Turn, until: dt.datetime) -> None:
    await conn.execute(
        "UPDATE scan_outbox_terminals SET run_at = $2 WHERE terminal_id = $1", turn.terminal_id, until
    )


async def release(conn: asyncpg.Connection, turn: Turn, run_at: dt.datetime) -> None:
    """Let go of the terminal: any deliverer may take it from `run_at` (now, or the retry time)."""
    await conn.execute(
        "UPDATE scan_outbox_terminals SET run_at = $2, lease_token = NULL WHERE terminal_id = $1",
        turn.terminal_id,
        run_at,
    )


async def finish(conn: asyncpg.Connection, turn: Turn) -> bool:
    """The holder found no pending row: drop the terminal's turn, unless an upload or a replay wrote rows
    meanwhile (False: deliver those). The lock first, then a fresh look at the rows: an upload still writing
    holds the turn's row until it commits, so its rows are seen."""
    await conn.execute(
        "SELECT 1 FROM scan_outbox_terminals WHERE terminal_id = $1 FOR UPDATE", turn.terminal_id
    )
    if await conn.fetchval(
        "SELECT EXISTS (SELECT 1 FROM scan_outbox WHERE terminal_id = $1 AND status = 'pending')",
        turn.terminal_id,
    ):
        return False
    await conn.execute("DELETE FROM scan_outbox_terminals WHERE terminal_id = $1", turn.terminal_id)
    return True
