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
    event: ScanEvent | None
    """None: the stored event no longer decodes (`broken` says why); each delivery of it is a failed try."""
    attempt: int
    """Tries of the app so far."""
    deferred: int = 0
    """Tries put off so far (the app could not be asked: busy, not loaded, suspended); not counted."""
    broken: str | None = None


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
        "SELECT scan_id, event, attempt, deferred FROM scan_outbox WHERE terminal_id = $1 AND status = 'pending'"
        " ORDER BY scanned_at, scan_id LIMIT 1",
        terminal_id,
    )
    if r is None:
        return None
    try:
        event = msgspec.json.decode(r["event"], type=ScanEvent)
    except msgspec.DecodeError as exc:  # msgspec names the field and the type it wanted, never the value
        return OutboxRow(
            r["scan_id"], None, r["attempt"], r["deferred"], broken=f"scan_outbox.undecodable: {exc}"
        )
    return OutboxRow(r["scan_id"], event, r["attempt"], r["deferred"])


# Every write of a holder names its turn: it changes something only while the holder's token is the terminal's,
# and locks the turn's row meanwhile (`held`: a claim skips it), so a holder whose lease ended and was taken by
# another (a stalled process waking up) cannot complete, fail or let go of the new holder's rows.


async def delivered(conn: asyncpg.Connection, turn: Turn, scan_id: uuid.UUID, now: dt.datetime) -> bool:
    """The app's handler returned: the row is done (kept as `delivered` until purged). False: the turn is not
    held any more (nothing written)."""
    done = await conn.fetchval(
        "WITH held AS (SELECT terminal_id FROM scan_outbox_terminals"
        " WHERE terminal_id = $1 AND lease_token = $2 FOR UPDATE)"
        " UPDATE scan_outbox o SET status = 'delivered', finished_at = $4, attempt = o.attempt + 1"
        " FROM held WHERE o.scan_id = $3 AND o.terminal_id = held.terminal_id RETURNING true",
        turn.terminal_id,
        turn.token,
        scan_id,
        now,
    )
    return bool(done)


async def failed(
    conn: asyncpg.Connection,
    turn: Turn,
    row: OutboxRow,
    *,
    error: str,
    counted: bool,
    now: dt.datetime,
    final: bool = False,
) -> bool:
    """A try that failed: one of the app's tries (`counted`), or put off (the app could not be asked); `final`:
    given up (kept as `failed`, the terminal's later rows go on). False: the turn is not held any more (nothing
    written)."""
    done = await conn.fetchval(
        "WITH held AS (SELECT terminal_id FROM scan_outbox_terminals"
        " WHERE terminal_id = $1 AND lease_token = $2 FOR UPDATE)"
        " UPDATE scan_outbox o SET attempt = $4, deferred = $5, last_error = $6,"
        " status = CASE WHEN $7 THEN 'failed' ELSE o.status END, finished_at = CASE WHEN $7 THEN $8::timestamptz END"
        " FROM held WHERE o.scan_id = $3 AND o.terminal_id = held.terminal_id RETURNING true",
        turn.terminal_id,
        turn.token,
        row.scan_id,
        row.attempt + 1 if counted else row.attempt,
        row.deferred if counted else row.deferred + 1,
        error[:500],
        final,
        now,
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


# -- what operators see and do (`yima scan-outbox`) -------------------------------------------------------------


class KeptRow(msgspec.Struct, frozen=True):
    scan_id: uuid.UUID
    terminal_id: str
    scanned_at: dt.datetime
    status: str
    attempt: int
    deferred: int
    created_at: dt.datetime
    finished_at: dt.datetime | None
    last_error: str | None


async def rows(conn: asyncpg.Connection, status: str, terminal_id: str | None, limit: int) -> list[KeptRow]:
    """Rows of one status (of one terminal), the latest finished (or written, when pending) first."""
    found = await conn.fetch(
        "SELECT scan_id, terminal_id, scanned_at, status, attempt, deferred, created_at, finished_at, last_error"
        " FROM scan_outbox WHERE status = $1 AND ($2::text IS NULL OR terminal_id = $2)"
        " ORDER BY coalesce(finished_at, created_at) DESC, scan_id LIMIT $3",
        status,
        terminal_id,
        limit,
    )
    return [KeptRow(**dict(r)) for r in found]


async def replay(
    conn: asyncpg.Connection,
    now: dt.datetime,
    *,
    scan_ids: Sequence[uuid.UUID] = (),
    all_failed: bool = False,
    terminal_id: str | None = None,
) -> list[uuid.UUID]:
    """Put delivered or failed rows back to be delivered again (their tries start over): the named ones, or every
    failed one (of one terminal); their terminals are due now unless held or waiting. The rows replayed."""
    replayed = await conn.fetch(
        "UPDATE scan_outbox SET status = 'pending', attempt = 0, deferred = 0, finished_at = NULL, last_error = NULL"
        " WHERE status <> 'pending' AND (scan_id = ANY($1::uuid[]) OR ($2 AND status = 'failed'))"
        " AND ($3::text IS NULL OR terminal_id = $3)"
        " RETURNING scan_id, terminal_id",
        list(scan_ids),
        all_failed,
        terminal_id,
    )
    # DO UPDATE locks the turn, as an upload does: a holder letting go of the terminal waits and sees these rows
    await conn.execute(
        "INSERT INTO scan_outbox_terminals AS t (terminal_id, run_at)"
        " SELECT DISTINCT unnest($1::text[]), $2::timestamptz ORDER BY 1"
        " ON CONFLICT (terminal_id) DO UPDATE SET terminal_id = excluded.terminal_id",
        [r["terminal_id"] for r in replayed],
        now,
    )
    return [r["scan_id"] for r in replayed]


async def purge(conn: asyncpg.Connection, before: dt.datetime, limit: int) -> int:
    """Delete up to `limit` delivered or failed rows that finished before `before`."""
    # The condition again on the DELETE itself: a row a replay made pending meanwhile is locked by it, and once
    # the replay commits PostgreSQL re-checks only the DELETE's own WHERE on the new row (READ COMMITTED), not the
    # subquery's; without it the replayed row would be deleted.
    deleted: int = await conn.fetchval(
        "WITH gone AS (DELETE FROM scan_outbox WHERE scan_id IN ("
        "  SELECT scan_id FROM scan_outbox WHERE status <> 'pending' AND finished_at < $1 LIMIT $2)"
        " AND status <> 'pending' AND finished_at < $1"
        " RETURNING 1) SELECT count(*) FROM gone",
        before,
        limit,
    )
    return deleted
