"""The terminal lists a terminal holds (yima_sdk.lists): the entries the app bound to its scene holds for its staff
unit, kept in the terminal's SQLite file (tables of their own, through a connection of their own), found by a
verified code, and the admissions a gate makes by them.

Finding an entry needs no personal data: for an Ankang code, the tag of the code's subject ref under each list's
salt is compared with the entry's tag for the code's bucket (`issued_at // period_s`); for an app pass of the
terminal's app, the pass number is compared with the entry's.

A gate admits by the entries of one list, whose values may say (the convention `Terminal.admit` applies):
    people       how many one scan admits (a group ticket), default 1
    reentry      whether the entry admits again after its first use here, on the county day of that use (a pass
                 of several days re-enters only the day it first entered), default false
    enter_until  Unix seconds after which a first entry is refused (a time slot's end), default none
Of the entries a code finds, a gate admits by one open for a first entry now (the earliest to open), else one
that re-enters; else it refuses by the one already used (`list.used_up`), else by the one whose first entry was
due (`list.closed`). Uses are counted per terminal: two gates that both admit the same ticket offline are reconciled when their
uploads settle (the app counts the entry once).
"""

from __future__ import annotations

import base64
import datetime as dt
import sqlite3
from typing import Any, Final

import msgspec

from yima_sdk.codes import VerifiedCode
from yima_sdk.cron import COUNTY_TIME
from yima_sdk.lists import ListChanges, holder_tag
from yima_sdk.terminal._decisions import ScanDecision

__all__ = ["Admission", "HeldEntry", "HeldLists"]

PRUNE_AFTER_S: Final = 86400
"""Expired entries stay a day (a clock set back finds them still expired), then go."""

_SCHEMA = """
CREATE TABLE IF NOT EXISTS list_entry (
    list         TEXT NOT NULL,
    key          TEXT NOT NULL,
    value        BLOB NOT NULL,     -- the app's JSON
    valid_from   INTEGER NOT NULL,  -- Unix seconds
    expires_at   INTEGER NOT NULL,
    pass_number  INTEGER,
    first_bucket INTEGER,
    tags         BLOB,              -- 8 bytes per code bucket from first_bucket on
    PRIMARY KEY (list, key)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS list_entry_pass ON list_entry (pass_number) WHERE pass_number IS NOT NULL;
CREATE TABLE IF NOT EXISTS list_salt (list TEXT PRIMARY KEY, salt BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS list_use (
    list TEXT NOT NULL, key TEXT NOT NULL, uses INTEGER NOT NULL, last_at INTEGER NOT NULL,
    first_at INTEGER,  -- its first use (Unix seconds); files made before it have none: last_at stands in
    PRIMARY KEY (list, key)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS list_state (name TEXT PRIMARY KEY, value BLOB NOT NULL);
"""

_changes = msgspec.json.Decoder(ListChanges)
_json = msgspec.json.Decoder()
_SELECT = (
    "SELECT e.list, e.key, e.value, e.valid_from, e.expires_at, coalesce(u.uses, 0),"
    " coalesce(u.first_at, u.last_at)"
    " FROM list_entry e LEFT JOIN list_use u ON u.list = e.list AND u.key = e.key WHERE "
)
_LIVE = " AND e.valid_from <= ? AND e.expires_at > ? AND (? IS NULL OR e.list = ?) ORDER BY e.key"
_BY_PASS = _SELECT + "e.pass_number = ?" + _LIVE
_BY_TAG = (
    _SELECT
    + "e.list = ? AND e.first_bucket <= ? AND e.first_bucket + length(e.tags) / 8 > ?"
    + " AND substr(e.tags, (? - e.first_bucket) * 8 + 1, 8) = ?"
    + _LIVE
)
"""The entry's tag of the code's bucket: the bucket's 8 bytes of `tags`, when the bucket is in its range."""


class HeldEntry(msgspec.Struct, frozen=True):
    """An entry this terminal holds, and how often it admitted by it."""

    list: str
    key: str
    value: Any
    valid_from: int
    expires_at: int
    uses: int = 0
    first_used_at: int | None = None
    """When it first admitted here (Unix seconds)."""


class Admission(msgspec.Struct, frozen=True):
    """A gate's answer to one scan (`Terminal.admit`)."""

    decision: ScanDecision
    """The scan as recorded (uploaded later like every offline scan)."""
    admit: bool
    reason: str | None
    """None when admitted; the scan's `credential.*` code; `list.no_entry` (nothing held for this code now),
    `list.used_up` (its entry admitted here before and does not re-enter), `list.closed` (its first entry was due
    by `enter_until`), `list.repeated` (the same code read again within the replay window after it was admitted:
    the gate stays shut, the people it let in went through already)."""
    entry: HeldEntry | None = None
    people: int = 0


def _b64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class HeldLists:
    """The lists of one terminal in its SQLite file."""

    def __init__(self, path: str) -> None:
        self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=30)
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(_SCHEMA)
        if "first_at" not in {row[1] for row in self._db.execute("PRAGMA table_info(list_use)")}:
            self._db.execute("ALTER TABLE list_use ADD COLUMN first_at INTEGER")  # a file of an older SDK
        self._recent: dict[str, Admission] = {}
        """Admissions by record id, to answer a code read again within the replay window: refused as before, or
        `list.repeated` (not again) if it was admitted."""

    def close(self) -> None:
        self._db.close()

    def _state(self, name: str) -> str | None:
        row = self._db.execute("SELECT value FROM list_state WHERE name = ?", (name,)).fetchone()
        return None if row is None else bytes(row[0]).decode()

    @property
    def cursor(self) -> int:
        return int(self._state("cursor") or 0)

    @property
    def app_id(self) -> str | None:
        """The app whose lists are held (the one bound to the terminal's scene at the last sync)."""
        return self._state("app_id") or None

    def load(self, body: bytes, now: float) -> ListChanges:
        """Apply one `GET /v1/terminal/lists` answer in one transaction; raises msgspec errors before anything
        changes when it is malformed. An answer for another app or unit than those held forgets what is held and
        what it admitted; when it answered changes after the old scope's cursor, none of it is kept and it comes
        back with `more` and cursor 0: the new scope is fetched from its start."""
        answer = _changes.decode(body)
        scope = f"{answer.app_id or ''}\n{answer.unit or ''}"
        db = self._db
        db.execute("BEGIN IMMEDIATE")
        try:
            moved = self._state("scope") not in (None, scope)
            if moved and not answer.reset and self.cursor > 0:
                # another app or unit answered changes after our cursor, which counts the old scope's changes:
                # forget the old scope, and fetch the new one's from its start
                answer = msgspec.structs.replace(answer, cursor=0, more=True, salts=[], entries=[])
            if answer.reset or moved:
                db.execute("DELETE FROM list_entry")  # another app, another unit, or the server starts over
                db.execute("DELETE FROM list_salt")
            if moved:
                db.execute("DELETE FROM list_use")  # the uses of another scope's keys
                self._recent.clear()
            for salt in answer.salts:
                db.execute(
                    "INSERT OR REPLACE INTO list_salt (list, salt) VALUES (?, ?)",
                    (salt.list, _b64(salt.salt)),
                )
            for e in answer.entries:
                if e.dropped:
                    db.execute("DELETE FROM list_entry WHERE list = ? AND key = ?", (e.list, e.key))
                    continue
                db.execute(
                    "INSERT OR REPLACE INTO list_entry (list, key, value, valid_from, expires_at, pass_number,"
                    " first_bucket, tags) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    (e.list, e.key, msgspec.json.encode(e.value), e.valid_from, e.expires_at, e.pass_number,
                     e.first_bucket, None if e.tags is None else _b64(e.tags)),
                )  # fmt: skip
            db.execute("DELETE FROM list_entry WHERE expires_at < ?", (int(now - PRUNE_AFTER_S),))
            for name, value in (
                ("cursor", str(answer.cursor)),
                ("scope", scope),
                ("app_id", answer.app_id or ""),
                ("period_s", str(answer.period_s)),
            ):
                db.execute(
                    "INSERT OR REPLACE INTO list_state (name, value) VALUES (?, ?)", (name, value.encode())
                )
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        return answer

    def count(self) -> int:
        return int(self._db.execute("SELECT count(*) FROM list_entry").fetchone()[0])

    def find(self, code: VerifiedCode, now: float, list_name: str | None = None) -> list[HeldEntry]:
        """The entries in force at `now` that the verified code finds: its holder's (an Ankang code), or its
        pass's (a pass of the lists' app); in `list_name` only, when given."""
        live = (int(now), int(now), list_name, list_name)
        if code.kind == "app_pass" and code.app_pass is not None:
            if code.app_pass.a != self.app_id:
                return []
            rows = self._db.execute(_BY_PASS, (code.app_pass.p, *live)).fetchall()
            return [_held(row) for row in rows]
        period = int(self._state("period_s") or 0)
        if code.kind != "ankang_code" or period <= 0:
            return []
        bucket = code.issued_at // period
        found: list[HeldEntry] = []
        for name, salt in self._db.execute("SELECT list, salt FROM list_salt ORDER BY list").fetchall():
            if list_name is None or name == list_name:
                tag = holder_tag(bytes(salt), code.subject_ref)
                rows = self._db.execute(_BY_TAG, (name, bucket, bucket, bucket, tag, *live)).fetchall()
                found.extend(_held(row) for row in rows)
        return found

    def admit(self, decision: ScanDecision, now: float, list_name: str) -> Admission:
        """A gate's answer to a scan recorded as `decision`, by the entries of `list_name`; an admission counts a
        use of its entry (durably, before this returns)."""
        if decision.repeated:  # the scan as decided before: nobody more goes through for it
            earlier = self._recent.get(decision.record_id)
            if earlier is None or earlier.admit:
                entry = None if earlier is None else earlier.entry
                return Admission(decision, False, "list.repeated", entry)
            return earlier
        if decision.result != "accept" or decision.code is None:
            return Admission(decision, False, decision.reason or "credential.rejected")
        entries = self.find(decision.code, now, list_name)
        if not entries:
            return self._remember(Admission(decision, False, "list.no_entry"))
        entry = min(entries, key=lambda e: _fitness(e, now))  # as the tourism app's gates choose online
        refused = {_USED: "list.used_up", _CLOSED: "list.closed"}.get(_fitness(entry, now)[0])
        if refused is not None:
            return self._remember(Admission(decision, False, refused, entry))
        with_use = HeldEntry(
            entry.list, entry.key, entry.value, entry.valid_from, entry.expires_at, entry.uses + 1,
            entry.first_used_at or int(now),
        )  # fmt: skip
        self._db.execute(
            "INSERT INTO list_use (list, key, uses, last_at, first_at) VALUES (?, ?, 1, ?, ?)"
            " ON CONFLICT DO UPDATE SET uses = uses + 1, last_at = excluded.last_at,"
            " first_at = coalesce(first_at, last_at)",
            (entry.list, entry.key, int(now), int(now)),
        )  # autocommit: durable (synchronous=FULL) when it returns
        return self._remember(Admission(decision, True, None, with_use, _people(entry)))

    def _remember(self, admission: Admission) -> Admission:
        if len(self._recent) > 10_000:
            self._recent.clear()
        self._recent[admission.decision.record_id] = admission
        return admission


def _held(row: tuple[Any, ...]) -> HeldEntry:
    return HeldEntry(row[0], row[1], _json.decode(row[2]), row[3], row[4], row[5], row[6])


_OPEN, _REENTERS, _USED, _CLOSED = range(4)


def _fitness(entry: HeldEntry, now: float) -> tuple[int, int]:
    """How well an entry fits a scan at `now`, lowest first: open for a first entry (the earliest to open first),
    used and re-entering today, used, first entry due before now."""
    if entry.uses:
        first = entry.first_used_at
        today = first is not None and _county_day(first) == _county_day(now)
        return (_REENTERS, 0) if _reentry(entry) and today else (_USED, 0)
    until = entry.value.get("enter_until") if isinstance(entry.value, dict) else None
    if type(until) is int and now > until:
        return _CLOSED, -until
    return _OPEN, entry.valid_from


def _county_day(at: float) -> dt.date:
    return dt.datetime.fromtimestamp(at, COUNTY_TIME).date()


def _reentry(entry: HeldEntry) -> bool:
    return isinstance(entry.value, dict) and entry.value.get("reentry") is True


def _people(entry: HeldEntry) -> int:
    people = entry.value.get("people", 1) if isinstance(entry.value, dict) else 1
    return people if type(people) is int and people >= 1 else 1
