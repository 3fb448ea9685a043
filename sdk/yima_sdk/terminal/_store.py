"""The terminal's SQLite file: scan records awaiting upload, the held trust list, revocation lists.

Opened in WAL mode with `synchronous=FULL`: a transaction is on disk (the WAL fsynced) when COMMIT
returns, which is the point after which a terminal may answer a scan. All SQL of the terminal lives here.
"""

from __future__ import annotations

import functools
import itertools
import sqlite3
from collections.abc import Iterable, Sequence
from typing import Any

from yima_sdk.trust import RevocationKind, RevocationSet

__all__ = ["RecordRow", "ScanStore"]

# record_id, payload, amount_fen, local_result, local_reason, serial (scanned_at and clock_source are the group's)
RecordRow = tuple[str, str, int, str, str | None, bytes | None]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS scan_record (
    seq           INTEGER PRIMARY KEY,
    record_id     TEXT NOT NULL,  -- unique by construction; no index: it would cost every scan
    payload       TEXT NOT NULL,
    scanned_at    INTEGER NOT NULL,
    clock_source  TEXT NOT NULL,
    amount_fen    INTEGER NOT NULL,
    local_result  TEXT NOT NULL,
    local_reason  TEXT,
    serial        BLOB,
    uploaded      INTEGER NOT NULL DEFAULT 0,
    server_status TEXT,
    server_reason TEXT
);
-- No index on pending records: it cost every scan; pending reads start from a low-water mark instead.
DROP INDEX IF EXISTS scan_record_pending;
CREATE TABLE IF NOT EXISTS terminal_state (key TEXT PRIMARY KEY, value BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS revocation (
    issuer INTEGER NOT NULL, kind TEXT NOT NULL, ref BLOB NOT NULL, PRIMARY KEY (issuer, kind, ref)
);
CREATE TABLE IF NOT EXISTS revocation_version (issuer INTEGER PRIMARY KEY, version INTEGER NOT NULL);
"""

_INSERT_CHUNK = 128
"""Records per INSERT: one statement with many VALUES rows costs a third less per record than
executemany (one VM run instead of one per row); 128 x 6 parameters stay far below SQLite's limit."""


@functools.lru_cache(maxsize=8)
def _insert_records(count: int) -> str:
    # Only placeholders are repeated into the text; no value ever is. ?1 and ?2 (the group's scan time and
    # clock source) are bound once per statement and shared by every row.
    values = ",".join(["(?1, ?2, ?, ?, ?, ?, ?, ?)"] * count)
    return _INSERT_HEAD + values


_INSERT_HEAD = (
    "INSERT INTO scan_record (scanned_at, clock_source, record_id, payload, amount_fen,"
    " local_result, local_reason, serial) VALUES "
)


class ScanStore:
    """One SQLite connection owned by one terminal.

    Used by one thread at a time: the terminal's thread, except that `commit_records` may run on the
    terminal's commit thread while the terminal thread does no SQL (it waits for that commit first).
    """

    def __init__(self, path: str) -> None:
        self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(_SCHEMA)
        self._low = self._first_pending(0)
        """Every record below this sequence number is acknowledged by the server."""

    def _first_pending(self, since: int) -> int:
        """The lowest unacknowledged sequence number at or after `since` (a rowid range scan), or the next
        sequence number when none is pending."""
        row = self._db.execute(
            "SELECT min(seq) FROM scan_record WHERE seq >= ? AND uploaded = 0", (since,)
        ).fetchone()
        if row[0] is not None:
            return int(row[0])
        return int(self._db.execute("SELECT coalesce(max(seq), 0) + 1 FROM scan_record").fetchone()[0])

    def close(self) -> None:
        self._db.close()

    def add_records(self, rows: Sequence[RecordRow], scanned_at: int, clock_source: str) -> None:
        """Write scan records in one transaction; durable when this returns."""
        self.stage_records(rows, scanned_at, clock_source)
        self.commit_records()

    def stage_records(self, rows: Sequence[RecordRow], scanned_at: int, clock_source: str) -> None:
        """Open a transaction and insert scan records (all scanned at `scanned_at`, in ms, by a clock of
        `clock_source`) into it; `commit_records` makes them durable."""
        db = self._db
        db.execute("BEGIN IMMEDIATE")
        try:
            for start in range(0, len(rows), _INSERT_CHUNK):
                chunk = rows[start : start + _INSERT_CHUNK]
                db.execute(
                    _insert_records(len(chunk)),
                    [scanned_at, clock_source, *itertools.chain.from_iterable(chunk)],
                )
        except BaseException:
            self._db.execute("ROLLBACK")
            raise

    def commit_records(self) -> None:
        """COMMIT the staged records: the WAL fsync (and any checkpoint) happens here, outside the GIL."""
        try:
            self._db.execute("COMMIT")
        except BaseException:
            if self._db.in_transaction:
                self._db.execute("ROLLBACK")
            raise

    def pending(self, limit: int) -> list[tuple[int, str, str, int, str, int, str, str | None]]:
        """The oldest records the server has not acknowledged yet, with their local sequence number."""
        return self._db.execute(
            "SELECT seq, record_id, payload, scanned_at, clock_source, amount_fen, local_result, local_reason"
            " FROM scan_record WHERE seq >= ? AND uploaded = 0 ORDER BY seq LIMIT ?",
            (self._low, limit),
        ).fetchall()

    def pending_count(self) -> int:
        return int(
            self._db.execute(
                "SELECT count(*) FROM scan_record WHERE seq >= ? AND uploaded = 0", (self._low,)
            ).fetchone()[0]
        )

    def mark_uploaded(self, results: Iterable[tuple[int, str, str | None]]) -> None:
        """Record the server's verdict (seq, status, reason) for acknowledged records."""
        with self._transaction():
            self._db.executemany(
                "UPDATE scan_record SET uploaded = 1, server_status = ?, server_reason = ? WHERE seq = ?",
                [(status, reason, seq) for seq, status, reason in results],
            )
        self._low = self._first_pending(self._low)

    def server_verdict(self, record_id: str) -> tuple[str | None, str | None] | None:
        # A full scan: diagnostic use only, so record_id carries no index on the scan path.
        row = self._db.execute(
            "SELECT server_status, server_reason FROM scan_record WHERE record_id = ?", (record_id,)
        ).fetchone()
        return None if row is None else (row[0], row[1])

    def offline_spent(self) -> dict[bytes, int]:
        """Amount accepted so far per device certificate serial, to enforce its offline amount limit."""
        rows = self._db.execute(
            "SELECT serial, sum(amount_fen) FROM scan_record"
            " WHERE serial IS NOT NULL AND local_result = 'accept' GROUP BY serial"
        )
        return {bytes(serial): int(total) for serial, total in rows}

    def get_state(self, key: str) -> bytes | None:
        row = self._db.execute("SELECT value FROM terminal_state WHERE key = ?", (key,)).fetchone()
        return None if row is None else bytes(row[0])

    def set_state(self, key: str, value: bytes) -> None:
        with self._transaction():
            self._db.execute(
                "INSERT INTO terminal_state (key, value) VALUES (?, ?)"
                " ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                (key, value),
            )

    def load_revocations(self) -> RevocationSet:
        revocations = RevocationSet()
        for issuer, version in self._db.execute("SELECT issuer, version FROM revocation_version").fetchall():
            refs: list[tuple[RevocationKind, bytes]] = [
                (kind, bytes(ref))
                for kind, ref in self._db.execute(
                    "SELECT kind, ref FROM revocation WHERE issuer = ?", (issuer,)
                )
            ]
            revocations.apply_delta(issuer, 0, version, refs)
        return revocations

    def save_revocations(
        self, issuer: int, replace: bool, version: int, added: Iterable[tuple[RevocationKind, bytes]]
    ) -> None:
        with self._transaction():
            if replace:
                self._db.execute("DELETE FROM revocation WHERE issuer = ?", (issuer,))
            self._db.executemany(
                "INSERT OR IGNORE INTO revocation (issuer, kind, ref) VALUES (?, ?, ?)",
                [(issuer, kind, ref) for kind, ref in added],
            )
            self._db.execute(
                "INSERT INTO revocation_version (issuer, version) VALUES (?, ?)"
                " ON CONFLICT (issuer) DO UPDATE SET version = excluded.version",
                (issuer, version),
            )

    def _transaction(self) -> _Transaction:
        return _Transaction(self._db)


class _Transaction:
    """BEGIN IMMEDIATE ... COMMIT, or ROLLBACK when the block raises."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db

    def __enter__(self) -> None:
        self._db.execute("BEGIN IMMEDIATE")

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        self._db.execute("ROLLBACK" if exc_type else "COMMIT")
