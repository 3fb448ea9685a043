"""The terminal's SQLite file: scan records awaiting upload, the held trust list, revocation lists.

Opened in WAL mode with `synchronous=FULL`: a transaction is on disk (the WAL fsynced) when COMMIT
returns, which is the point after which a terminal may answer a scan. All SQL of the terminal lives here.

Scan records are kept one row per group commit (`scan_group`): the group's records as one MessagePack
array, written with one INSERT. A row per record cost the scan path more than twice the CPU (measured in
docs/benchmarks.md); records are read one by one only when they are uploaded, which is rare and off
the scan path. The server's verdicts are kept per record (`scan_verdict`), and each group counts its
records still pending, so a group acknowledged in part resumes where the server left off.
"""

from __future__ import annotations

import itertools
import sqlite3
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any, Final

import msgspec

from yima_sdk.trust import RevocationSet

__all__ = ["PendingRecord", "RecordRow", "ScanStore"]

# record_id, payload, amount_fen, local_result, local_reason (scanned_at and clock_source are the group's), then
# stop and tap where the scan said where it was or tapped off (a boarding that said neither keeps the older,
# shorter row, so a file written before stops reads the same)
RecordRow = tuple[str, str, int, str, str | None] | tuple[str, str, int, str, str | None, str | None, str]
# group seq, record_id, payload, scanned_at (ms), clock_source, amount_fen, local_result, local_reason, stop, tap,
# then the gate's verdict when `Terminal.admit` decided the scan: admitted (None: no gate decided it) and its reason
PendingRecord = tuple[int, str, str, int, str, int, str, str | None, str | None, str, bool | None, str | None]

FORMAT_VERSION: Final = 2
"""`PRAGMA user_version` of the file. 0: a file from before scan groups (one `scan_record` row per
record), converted on open."""

_SCHEMA = """
CREATE TABLE IF NOT EXISTS scan_group (
    seq          INTEGER PRIMARY KEY,
    scanned_at   INTEGER NOT NULL,  -- ms since the epoch, by the terminal's clock
    clock_source TEXT NOT NULL,
    records      BLOB NOT NULL,     -- MessagePack array of RecordRow arrays
    pending      INTEGER NOT NULL   -- records the server has not acknowledged yet
);
-- A gate's verdict on a scan it decided by its lists (Terminal.admit), uploaded with the scan's record.
CREATE TABLE IF NOT EXISTS gate_verdict (
    record_id TEXT PRIMARY KEY,
    admitted  INTEGER NOT NULL,
    reason    TEXT
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS scan_verdict (
    record_id     TEXT PRIMARY KEY,
    server_status TEXT NOT NULL,
    server_reason TEXT
) WITHOUT ROWID;
-- Accepted offline amount per device certificate serial, for its offline amount limit.
CREATE TABLE IF NOT EXISTS offline_spent (
    serial BLOB PRIMARY KEY, amount_fen INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS terminal_state (key TEXT PRIMARY KEY, value BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS revocation (
    issuer INTEGER NOT NULL, kind TEXT NOT NULL, ref BLOB NOT NULL, PRIMARY KEY (issuer, kind, ref)
);
CREATE TABLE IF NOT EXISTS revocation_version (issuer INTEGER PRIMARY KEY, version INTEGER NOT NULL);
"""

_encode_records = msgspec.msgpack.Encoder().encode
_decode_records = msgspec.msgpack.Decoder(list[tuple[Any, ...]]).decode  # RecordRow, either length


class ScanStore:
    """One SQLite connection owned by one terminal.

    Used by one thread at a time: the terminal's thread, except that `commit_records` may run on the
    terminal's commit thread while the terminal thread does no SQL (it waits for that commit first).
    """

    def __init__(self, path: str) -> None:
        self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        version = self._db.execute("PRAGMA user_version").fetchone()[0]
        if version > FORMAT_VERSION:  # refused before anything is written to it
            self._db.close()
            raise sqlite3.DatabaseError(f"terminal file format {version} is newer than this SDK's")
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(_SCHEMA)  # every statement is IF NOT EXISTS
        if version < FORMAT_VERSION:
            with self._transaction():  # all or nothing: a conversion cut short is done again at the next open
                self._convert_records()
                self._db.execute(f"PRAGMA user_version = {FORMAT_VERSION}")
        self._low = self._first_pending(0)
        """Every group below this sequence number is acknowledged by the server."""

    def _convert_records(self) -> None:
        """Move the records of a file from before scan groups (one row each) into groups, keeping
        which the server acknowledged and its verdicts, in the open transaction."""
        db = self._db
        if db.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'scan_record'").fetchone():
            rows = db.execute(
                "SELECT scanned_at, clock_source, record_id, payload, amount_fen, local_result, local_reason,"
                " serial, uploaded, server_status, server_reason FROM scan_record ORDER BY seq"
            )
            # Consecutive records of one scan time and clock source were one group commit.
            for (scanned_at, clock_source), group in itertools.groupby(rows, key=lambda r: (r[0], r[1])):
                records = list(group)
                db.execute(
                    "INSERT INTO scan_group (scanned_at, clock_source, records, pending) VALUES (?, ?, ?, ?)",
                    (
                        scanned_at,
                        clock_source,
                        _encode_records([r[2:7] for r in records]),
                        sum(1 for r in records if not r[8]),
                    ),
                )
                db.executemany(
                    "INSERT INTO scan_verdict (record_id, server_status, server_reason) VALUES (?, ?, ?)"
                    " ON CONFLICT DO NOTHING",
                    [(r[2], r[9] or "accepted", r[10]) for r in records if r[8]],
                )
            db.execute(
                "INSERT INTO offline_spent (serial, amount_fen) SELECT serial, sum(amount_fen) FROM scan_record"
                " WHERE serial IS NOT NULL AND local_result = 'accept' GROUP BY serial"
            )
            db.execute("DROP TABLE scan_record")

    def _first_pending(self, since: int) -> int:
        """The lowest group with unacknowledged records at or after `since` (a rowid range scan), or the
        next sequence number when none is pending."""
        row = self._db.execute(
            "SELECT min(seq) FROM scan_group WHERE seq >= ? AND pending > 0", (since,)
        ).fetchone()
        if row[0] is not None:
            return int(row[0])
        return int(self._db.execute("SELECT coalesce(max(seq), 0) + 1 FROM scan_group").fetchone()[0])

    def close(self) -> None:
        self._db.close()

    def add_records(
        self, rows: Sequence[RecordRow], scanned_at: int, clock_source: str, spent: Mapping[bytes, int]
    ) -> None:
        """Write a group of scan records in one transaction; durable when this returns."""
        self.stage_records(rows, scanned_at, clock_source, spent)
        self.commit_records()

    def stage_records(
        self, rows: Sequence[RecordRow], scanned_at: int, clock_source: str, spent: Mapping[bytes, int]
    ) -> None:
        """Open a transaction and write a group of scan records (all scanned at `scanned_at`, in ms, by a
        clock of `clock_source`) and the offline amounts they `spent` per certificate serial into it;
        `commit_records` makes them durable."""
        db = self._db
        db.execute("BEGIN IMMEDIATE")
        try:
            if rows:
                db.execute(
                    "INSERT INTO scan_group (scanned_at, clock_source, records, pending) VALUES (?, ?, ?, ?)",
                    (scanned_at, clock_source, _encode_records(rows), len(rows)),
                )
            charged = [(serial, amount) for serial, amount in spent.items() if amount]
            if charged:
                db.executemany(
                    "INSERT INTO offline_spent (serial, amount_fen) VALUES (?, ?)"
                    " ON CONFLICT DO UPDATE SET amount_fen = amount_fen + excluded.amount_fen",
                    charged,
                )
        except BaseException:
            db.execute("ROLLBACK")
            raise

    def commit_records(self) -> None:
        """COMMIT the staged records: the WAL fsync (and any checkpoint) happens here, outside the GIL."""
        try:
            self._db.execute("COMMIT")
        except BaseException:
            if self._db.in_transaction:
                self._db.execute("ROLLBACK")
            raise

    def pending(self, limit: int) -> list[PendingRecord]:
        """The oldest records the server has not acknowledged yet (at most `limit`), with their group."""
        out: list[PendingRecord] = []
        for seq, scanned_at, clock_source, records in self._pending_groups():
            gates = self._gate_verdicts([r[0] for r in records])
            out.extend(
                (
                    seq,
                    r[0],
                    r[1],
                    scanned_at,
                    clock_source,
                    r[2],
                    r[3],
                    r[4],
                    *(r[5:7] if len(r) > 5 else (None, "on")),
                    *gates.get(r[0], (None, None)),
                )
                for r in records
            )
            if len(out) >= limit:
                return out[:limit]
        return out

    def _pending_groups(self) -> Iterator[tuple[int, int, str, list[tuple[Any, ...]]]]:
        """The groups with unacknowledged records, oldest first, each with only those records."""
        cursor = self._db.execute(
            "SELECT seq, scanned_at, clock_source, records, pending FROM scan_group"
            " WHERE seq >= ? AND pending > 0 ORDER BY seq",
            (self._low,),
        )
        try:
            for seq, scanned_at, clock_source, blob, pending in cursor:
                records = _decode_records(blob)
                if pending < len(records):  # acknowledged in part
                    done = self._acknowledged([r[0] for r in records])
                    records = [r for r in records if r[0] not in done]
                yield seq, scanned_at, clock_source, records
        finally:
            cursor.close()

    def _gate_verdicts(self, record_ids: Sequence[str]) -> dict[str, tuple[bool, str | None]]:
        rows = self._db.execute(
            "SELECT record_id, admitted, reason FROM gate_verdict"
            " WHERE record_id IN (SELECT value FROM json_each(?))",
            (msgspec.json.encode(record_ids).decode(),),
        )
        return {row[0]: (bool(row[1]), row[2]) for row in rows}

    def set_gate_verdict(self, record_id: str, admitted: bool, reason: str | None) -> None:
        """Keep a gate's verdict on the scan recorded as `record_id` (durable when this returns): its upload
        carries it, so the app settles the scan as the gate decided it."""
        self._db.execute(
            "INSERT INTO gate_verdict (record_id, admitted, reason) VALUES (?, ?, ?) ON CONFLICT DO NOTHING",
            (record_id, int(admitted), reason),
        )

    def _acknowledged(self, record_ids: Sequence[str]) -> set[str]:
        rows = self._db.execute(
            "SELECT record_id FROM scan_verdict WHERE record_id IN (SELECT value FROM json_each(?))",
            (msgspec.json.encode(record_ids).decode(),),
        )
        return {row[0] for row in rows}

    def pending_count(self) -> int:
        return int(
            self._db.execute(
                "SELECT coalesce(sum(pending), 0) FROM scan_group WHERE seq >= ?", (self._low,)
            ).fetchone()[0]
        )

    def mark_uploaded(self, results: Iterable[tuple[int, str, str, str | None]]) -> None:
        """Record the server's verdict (group seq, record id, status, reason) for acknowledged records."""
        newly: dict[int, int] = {}
        with self._transaction():
            for seq, record_id, status, reason in results:
                cursor = self._db.execute(
                    "INSERT INTO scan_verdict (record_id, server_status, server_reason) VALUES (?, ?, ?)"
                    " ON CONFLICT DO NOTHING",
                    (record_id, status, reason),
                )
                if cursor.rowcount == 1:
                    newly[seq] = newly.get(seq, 0) + 1
            self._db.executemany(
                "UPDATE scan_group SET pending = pending - ? WHERE seq = ?",
                [(count, seq) for seq, count in newly.items()],
            )
        self._low = self._first_pending(self._low)

    def server_verdict(self, record_id: str) -> tuple[str | None, str | None] | None:
        """(status, reason) once acknowledged, (None, None) while pending, None for an unknown record."""
        row = self._db.execute(
            "SELECT server_status, server_reason FROM scan_verdict WHERE record_id = ?", (record_id,)
        ).fetchone()
        if row is not None:
            return (row[0], row[1])
        # Diagnostic use only: a pending record is found by reading the pending groups.
        for _, _, _, records in self._pending_groups():
            if any(r[0] == record_id for r in records):
                return (None, None)
        return None

    def offline_spent(self) -> dict[bytes, int]:
        """Amount accepted so far per device certificate serial, to enforce its offline amount limit."""
        rows = self._db.execute("SELECT serial, amount_fen FROM offline_spent")
        return {bytes(serial): int(amount) for serial, amount in rows}

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
            refs: list[tuple[str, bytes]] = [
                (kind, bytes(ref))
                for kind, ref in self._db.execute(
                    "SELECT kind, ref FROM revocation WHERE issuer = ?", (issuer,)
                )
            ]
            revocations.apply_delta(issuer, 0, version, refs)
        return revocations

    def save_revocations(
        self, issuer: int, replace: bool, version: int, added: Iterable[tuple[str, bytes]]
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
