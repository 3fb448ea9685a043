"""Pruning the durable replay claims (scan_replay_claims), so the table holds only claims that still matter.

A claim refuses a second use of its code. Once no scan of that code can pass any more, it has nothing left to
refuse: online, a code is refused as expired past its validity plus the clock tolerance; offline, a record is
refused as `scan.too_old` past MAX_OFFLINE_AGE_S, and it must still have been valid when it was scanned. A claim
is taken at or after its code's first scan, so no scan of its code can pass once it is older than
MAX_OFFLINE_AGE_S + the longest validity + twice the tolerance (the issue time and the scan time may each be
off by it). The longest validity is the code format's limit, not our own setting: a partner county's Ankang
codes carry their own validity, up to 16 bits of seconds; a ride code lives a minute (the ride window).

One node at a time prunes (a PostgreSQL session advisory lock: the others skip the round), in batches of bounded
size that each commit on their own, so no long transaction holds locks against the scans writing claims.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from server.db import Database
from server.settings import Settings
from server.terminals import repository
from server.terminals.scans.offline import MAX_OFFLINE_AGE_S

log = logging.getLogger("yima.terminals.claims")

LONGEST_VALIDITY_S = 0xFFFF
"""The largest validity an Ankang code can carry (a 16-bit field; docs/credentials.md)."""
PRUNE_INTERVAL_S = 3600
PRUNE_BATCH = 5000


def claim_retention_s(settings: Settings) -> float:
    """How long a claim is kept: past this age no scan of its code can be accepted anyway."""
    return MAX_OFFLINE_AGE_S + LONGEST_VALIDITY_S + 2 * settings.clock_skew_s


async def prune_claims(
    db: Database, *, now: float, retention_s: float, batch: int = PRUNE_BATCH
) -> int | None:
    """Delete the claims older than `retention_s` at `now`, `batch` at a time; returns how many, or None when
    another node is pruning."""
    before = datetime.fromtimestamp(now - retention_s, UTC)
    pruned = 0
    async with db.connection() as conn:
        if not await repository.try_lock_claim_pruning(conn):
            return None
        try:
            while True:
                deleted = await repository.prune_replay_claims(conn, before, batch)
                pruned += deleted
                if deleted < batch:
                    break
        finally:
            try:
                await repository.unlock_claim_pruning(conn)
            except BaseException:
                # The pool resets no session state (server/db/pool.py): a connection that may still hold the
                # lock is closed rather than handed to the next caller, and PostgreSQL releases the lock with it.
                conn.terminate()
                raise
    if pruned:
        log.info("pruned %d replay claims taken before %s", pruned, before.isoformat(timespec="seconds"))
    return pruned
