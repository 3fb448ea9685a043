"""The SQL of the scan outbox: the rows an offline upload writes (`scan_outbox`) and each terminal's turn
(`scan_outbox_terminals`), claimed, delivered or failed by the deliverers in outbox.py."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Sequence
from typing import Literal

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


# Every write of a holder names its turn: it changes something only while the holder's token is the terminal's,
# and locks the turn's row meanwhile (`held`: a claim skips it), so a holder whose lease ended and was taken by
# another (a stalled process waking up) cannot complete, fail or let go of the new holder's rows.


async def delivered(conn: asyncpg.Connection, turn: Turn, scan_id: uuid.UUID) -> bool:
    """The app's handler returned: the row is done. False: the turn is not held any more (nothing written)."""
    done = await conn.fetchval(
        "WITH held AS (SELECT terminal_id FROM scan_outbox_terminals"
        " WHERE terminal_id = $1 AND lease_token = $2 FOR UPDATE)"
        " DELETE FROM scan_outbox o USING held"
        " WHERE o.scan_id = $3 AND o.terminal_id = held.terminal_id RETURNING true",
        turn.terminal_id,
        turn.token,
        scan_id,
    )
    return bool(done)


async def failed(
    conn: asyncpg.Connection, turn: Turn, scan_id: uuid.UUID, *, attempt: int, error: str, final: bool
) -> bool:
    """A try that failed; `final`: given up (kept as `failed`, the terminal's later rows go on). False: the turn
    is not held any more (nothing written)."""
    done = await conn.fetchval(
        "WITH held AS (SELECT terminal_id FROM scan_outbox_terminals"
        " WHERE terminal_id = $1 AND lease_token = $2 FOR UPDATE)"
        " UPDATE scan_outbox o SET attempt = $4, last_error = $5,"
        " status = CASE WHEN $6 THEN 'failed' ELSE o.status END"
        " FROM held WHERE o.scan_id = $3 AND o.terminal_id = held.terminal_id RETURNING true",
        turn.terminal_id,
        turn.token,
        scan_id,
        attempt,
        error[:500],
        final,
    )
    return bool(done)


async def renew(conn: asyncpg.Connection, turn: Turn, until: dt.datetime) -> bool:
    """Hold the terminal until `until`. False: the turn is not held any more (its lease ended, another took it)."""
    done = await conn.fetchval(
        "UPDATE scan_outbox_terminals SET run_at = $3 WHERE terminal_id = $1 AND lease_token = $2 RETURNING true",
        turn.terminal_id,
        turn.token,
        until,
    )
    return bool(done)


async def release(conn: asyncpg.Connection, turn: Turn, run_at: dt.datetime) -> bool:
    """Let go of the terminal: any deliverer may take it from `run_at` (now, or the retry time). False: the turn
    was not held any more (nothing written)."""
    done = await conn.fetchval(
        "UPDATE scan_outbox_terminals SET run_at = $3, lease_token = NULL"
        " WHERE terminal_id = $1 AND lease_token = $2 RETURNING true",
        turn.terminal_id,
        turn.token,
        run_at,
    )
    return bool(done)


async def finish(conn: asyncpg.Connection, turn: Turn) -> Literal["done", "more", "lost"]:
    """The holder found no pending row: drop the terminal's turn (`done`), unless an upload or a replay wrote
    rows meanwhile (`more`: deliver those) or the turn is not held any more (`lost`). The lock first, then a fresh
    look at the rows: an upload still writing holds the turn's row until it commits, so its rows are seen."""
    if not await conn.fetchval(
        "SELECT true FROM scan_outbox_terminals WHERE terminal_id = $1 AND lease_token = $2 FOR UPDATE",
        turn.terminal_id,
        turn.token,
    ):
        return "lost"
    if await conn.fetchval(
        "SELECT EXISTS (SELECT 1 FROM scan_outbox WHERE terminal_id = $1 AND status = 'pending')",
        turn.terminal_id,
    ):
        return "more"
    await conn.execute("DELETE FROM scan_outbox_terminals WHERE terminal_id = $1", turn.terminal_id)
    return "done"
