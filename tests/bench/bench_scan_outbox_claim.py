"""The scan outbox's claim against its backlog: 1,000 vs 100,000 pending rows, the claim of 0270 (a terminal's
turn, then its earliest row) side by side with the claim of 0250 (each terminal's earliest row, straight from the
rows) on a copy of 0250's table in the same database, ABBA.

Two backlogs of each size, written straight into the tables:

- spread: the rows over size/10 terminals (10 each), all due;
- behind retries: the rows over 100 terminals whose earliest row waits for its retry, and 16 terminals of one due
  row each, written last (what a deliverer should find at once; the 0250 claim walks every due row before them).

Each claim takes up to 16 terminals (the deliverer's batch) in a transaction rolled back afterwards, so every round
claims from the same backlog. Printed per case: the median claim time of the rounds (ms) and the shared buffers
the claim statement touched (EXPLAIN ANALYZE BUFFERS, shared hit + read: pages, less noisy than time on a shared
machine). The 0270 time is the turns' statement plus the earliest-row read of each terminal claimed; its buffers
are the turns' statement's.

Run: .venv/bin/python tests/bench/bench_scan_outbox_claim.py
"""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import re
import statistics
import sys
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import asyncpg
import msgspec
import yima_sdk.codes  # noqa: F401  (first: `import yima_sdk.passes` alone meets a cycle through codes)

from server.core import migrate
from server.settings import load_settings
from server.terminals.events import ScanEvent
from server.terminals.scans import outbox_repository as repo
from tests.e2e._real import fresh_database

SIZES = (1_000, 100_000)
EVENT = (
    msgspec.json.encode(
        ScanEvent(
            str(uuid.uuid4()),
            "t",
            "bus",
            "line-1",
            "accept",
            None,
            "ride_code",
            1,
            dt.datetime.now(dt.UTC),
            "offline",
        )
    ).decode()
)  # an uploaded ride's event, as the rows hold it (the same for every row: only the claim is measured)
BATCH = 16
ROUNDS = 40

# The table and claim of migration 0250 (commit d55bd18), for the side by side.
OLD_TABLE = """
CREATE TABLE scan_outbox_0250 (
    scan_id uuid PRIMARY KEY, terminal_id text NOT NULL, scanned_at timestamptz NOT NULL, event text NOT NULL,
    status text NOT NULL DEFAULT 'pending', created_at timestamptz NOT NULL, run_at timestamptz NOT NULL,
    attempt integer NOT NULL DEFAULT 0, lease_until timestamptz, last_error text);
CREATE INDEX scan_outbox_0250_order ON scan_outbox_0250 (terminal_id, scanned_at, scan_id) WHERE status = 'pending';
CREATE INDEX scan_outbox_0250_due ON scan_outbox_0250 (run_at) WHERE status = 'pending';
"""
OLD_CLAIM = (
    "UPDATE scan_outbox_0250 o SET lease_until = $3, attempt = o.attempt + 1"
    " FROM (SELECT h.scan_id FROM scan_outbox_0250 h"
    "       WHERE h.status = 'pending' AND h.run_at <= $1 AND (h.lease_until IS NULL OR h.lease_until <= $2)"
    "       AND NOT EXISTS (SELECT 1 FROM scan_outbox_0250 p WHERE p.status = 'pending'"
    "                       AND p.terminal_id = h.terminal_id"
    "                       AND (p.scanned_at, p.scan_id) < (h.scanned_at, h.scan_id))"
    "       ORDER BY h.run_at LIMIT $4 FOR UPDATE SKIP LOCKED) head"
    " WHERE o.scan_id = head.scan_id"
    " RETURNING o.scan_id, o.event, o.attempt"
)
NEW_CLAIM = (
    "UPDATE scan_outbox_terminals t SET run_at = $2, lease_token = gen_random_uuid()"
    " FROM (SELECT terminal_id FROM scan_outbox_terminals WHERE run_at <= $1"
    "       ORDER BY run_at LIMIT $3 FOR UPDATE SKIP LOCKED) due"
    " WHERE t.terminal_id = due.terminal_id"
    " RETURNING t.terminal_id, t.lease_token"
)  # outbox_repository.claim's statement, for EXPLAIN (the timings call repo.claim itself)


async def fill(conn: asyncpg.Connection, shape: str, size: int, now: dt.datetime) -> None:
    """The same backlog in both tables: every row pending; rows' run_at (0250) and the turns' (0270)."""
    await conn.execute("TRUNCATE scan_outbox, scan_outbox_terminals, scan_outbox_0250")
    past, later = now - dt.timedelta(minutes=10), now + dt.timedelta(hours=1)
    if shape == "spread":
        per, terminals, due_ones = 10, size // 10, 0
    else:
        per, terminals, due_ones = (size - BATCH) // 100, 100, BATCH
    # 0250: rows due at their writing; a terminal waiting for its retry has its earliest row's run_at later
    await conn.execute(
        "INSERT INTO scan_outbox_0250 (scan_id, terminal_id, scanned_at, event, created_at, run_at)"
        " SELECT gen_random_uuid(), 't' || (n / $2::int), $1::timestamptz - make_interval(secs => $3::int - n),"
        "        $6, $1::timestamptz, CASE WHEN $4::bool AND n % $2::int = 0 THEN $5::timestamptz"
        "                       ELSE $1::timestamptz + make_interval(secs => n / 1000.0) END"
        " FROM generate_series(0, $3::int - 1) n",
        past,
        per,
        per * terminals,
        shape != "spread",
        later,
        EVENT,
    )
    await conn.execute(  # the due terminals of one row each, written last
        "INSERT INTO scan_outbox_0250 (scan_id, terminal_id, scanned_at, event, created_at, run_at)"
        " SELECT gen_random_uuid(), 'd' || n, $1, $4, $1, $3 FROM generate_series(1, $2) n",
        past,
        due_ones,
        now - dt.timedelta(seconds=1),
        EVENT,
    )
    await conn.execute(
        "INSERT INTO scan_outbox (scan_id, terminal_id, scanned_at, event, created_at)"
        " SELECT scan_id, terminal_id, scanned_at, event, created_at FROM scan_outbox_0250"
    )
    await conn.execute(
        "INSERT INTO scan_outbox_terminals (terminal_id, run_at)"
        " SELECT DISTINCT ON (terminal_id) terminal_id, run_at FROM scan_outbox_0250"
        " ORDER BY terminal_id, scanned_at, scan_id"
    )
    await conn.execute("ANALYZE scan_outbox; ANALYZE scan_outbox_terminals; ANALYZE scan_outbox_0250")


async def old_claim(conn: asyncpg.Connection, now: dt.datetime) -> int:
    return len(await conn.fetch(OLD_CLAIM, now, now, now + dt.timedelta(minutes=5), BATCH))


async def new_claim(conn: asyncpg.Connection, now: dt.datetime) -> int:
    turns = await repo.claim(conn, now, now + dt.timedelta(minutes=5), BATCH)
    return sum([await repo.head(conn, turn.terminal_id) is not None for turn in turns])


async def timed(conn: asyncpg.Connection, claim, now: dt.datetime) -> tuple[float, int]:
    tr = conn.transaction()
    await tr.start()
    try:
        start = time.perf_counter()
        got = await claim(conn, now)
        return (time.perf_counter() - start) * 1000, got
    finally:
        await tr.rollback()


async def buffers(conn: asyncpg.Connection, sql: str, *args: object) -> int:
    tr = conn.transaction()
    await tr.start()
    try:
        plan = await conn.fetch(f"EXPLAIN (ANALYZE, BUFFERS) {sql}", *args)
    finally:
        await tr.rollback()
    first = next(r[0] for r in plan if "Buffers:" in r[0])  # the top node's: the whole statement's
    return sum(int(n) for n in re.findall(r"(?:hit|read)=(\d+)", first))


async def bench(dsn: str) -> None:
    await migrate(load_settings({}, mode="test", database_url=dsn, master_key=_master_key()))
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(OLD_TABLE)
        now = dt.datetime.now(dt.UTC)
        print(f"load average {os.getloadavg()[0]:.1f} {os.getloadavg()[1]:.1f} {os.getloadavg()[2]:.1f}")
        print(
            f"{'backlog':16} {'rows':>8}  {'0250 claim ms':>13} {'0270 claim ms':>13}  {'0250 bufs':>9} {'0270 bufs':>9}  claimed"
        )
        for shape in ("spread", "behind retries"):
            for size in SIZES:
                await fill(conn, shape, size, now)
                old_ms: list[float] = []
                new_ms: list[float] = []
                for claim in (old_claim, new_claim) * 3:  # warm: statements prepared, pages cached
                    await timed(conn, claim, now)
                for i in range(ROUNDS):  # ABBA
                    pair = [(old_claim, old_ms), (new_claim, new_ms)]
                    for claim, into in pair if i % 2 == 0 else reversed(pair):
                        ms, _ = await timed(conn, claim, now)
                        into.append(ms)
                _, got_old = await timed(conn, old_claim, now)
                _, got_new = await timed(conn, new_claim, now)
                old_bufs = await buffers(conn, OLD_CLAIM, now, now, now + dt.timedelta(minutes=5), BATCH)
                new_bufs = await buffers(conn, NEW_CLAIM, now, now + dt.timedelta(minutes=5), BATCH)
                print(
                    f"{shape:16} {size:>8,}  {statistics.median(old_ms):>13.2f} {statistics.median(new_ms):>13.2f}"
                    f"  {old_bufs:>9,} {new_bufs:>9,}  {got_old}/{got_new}"
                )
        await conn.execute("TRUNCATE scan_outbox, scan_outbox_terminals")
        await fill(conn, "behind retries", SIZES[-1], now)
        print("\nEXPLAIN of the 0270 claim, 100,000 rows behind retries:")
        tr = conn.transaction()
        await tr.start()
        for r in await conn.fetch(f"EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) {NEW_CLAIM}", now, now, BATCH):
            print("  " + r[0])
        await tr.rollback()
        await conn.execute("TRUNCATE scan_outbox, scan_outbox_terminals, scan_outbox_0250")
    finally:
        await conn.close()


def _master_key() -> str:
    from server.security.master_key import new_master_key_text

    return new_master_key_text()


def main() -> None:
    with fresh_database() as dsn:
        asyncio.run(bench(dsn))


if __name__ == "__main__":
    main()
