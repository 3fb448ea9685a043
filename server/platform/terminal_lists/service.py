"""Terminal lists: the `terminals.hold` / `terminals.drop` capability, by which an app keeps small entries for the
terminals of one staff unit (a spot's tickets of the day), and the changes those terminals sync.

    ctx.terminals.hold("gate", "spot:taiji-cave", "ticket.7", {"people": 3}, expires_at, user_id=u)  -> HeldEntry
    ctx.terminals.drop("gate", "spot:taiji-cave", "ticket.7")                                         -> bool

Nothing that names a resident leaves here. An entry bound to a resident (`user_id`) is kept with the account and
its holder tags (yima_sdk.lists): for every code bucket in which the entry counts, the first 8 bytes of
HMAC-SHA256(list salt, subject ref of the resident's code of that bucket). Terminals get the tags and the salt;
the account stays here. Tags are made with the resident's code generation at the time of the hold: holding the
entry again after the resident revoked their codes (a new generation) makes them anew, as does the sync of the
unit's terminals (`changes` re-tags entries whose resident moved to a new generation).

Every change of a unit's lists takes the unit's next change number in its transaction (repository.next_change),
so a terminal that synced up to change N has seen every change numbered N or below: it asks for those after N.
A drop leaves a tombstone (the entry's key) until the entry would have expired; entries that expire need none,
since terminals expire them by their own clock.
"""

from __future__ import annotations

import base64
import datetime as dt
import secrets
import time
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg
import msgspec
from yima_sdk import contract as c
from yima_sdk.errors import QuotaExceeded
from yima_sdk.lists import ListChanges, ListEntry, ListSalt, holder_tag, tag_buckets

from server.core import Core
from server.platform.ports import HealthCodes
from server.platform.terminal_lists import repository as repo

PRUNE_AFTER_S = 86400
"""Entries and tombstones stay a day past their expiry (a terminal's clock may lag), then go."""
SYNC_PAGE = 500
"""Changes per answer; a bound entry of a day carries ~11 KiB of tags."""
_EMPTY = b"{}"


def _utc(seconds: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(seconds, dt.UTC)


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


class TerminalLists:
    """The `terminals.hold` / `drop` operations, and the terminals domain's port onto a unit's list changes."""

    def __init__(
        self,
        core: Core,
        codes: HealthCodes,
        account: Callable[[str, str, str], Awaitable[int]],
        max_entries: int = c.MAX_LIST_ENTRIES,
    ) -> None:
        self.core = core
        self.codes = codes
        self._account = account
        """(app id, app-scoped id, what for) -> the resident's account; InvalidArgument for an unknown id."""
        self.max_entries = max_entries
        self.clock: Callable[[], float] = time.time

    async def handle(self, app_id: str, op: c.TerminalsHold | c.TerminalsDrop) -> Any:
        if isinstance(op, c.TerminalsDrop):
            return await self._drop(app_id, op)
        return await self._hold(app_id, op)

    async def _hold(self, app_id: str, op: c.TerminalsHold) -> c.HeldEntry:
        now = self.clock()
        value = c.check_hold(op, now)
        valid_from = op.valid_from or 0
        account = (
            None if op.user_id is None else await self._account(app_id, op.user_id, "be bound to an entry")
        )
        pass_number = None if op.pass_id is None else c.id_number(op.pass_id)
        reply = c.HeldEntry(
            list=op.list, unit=op.unit, key=op.key, valid_from=valid_from, expires_at=op.expires_at,
            bound=account is not None, pass_id=op.pass_id,
        )  # fmt: skip
        generation = None if account is None else await self.codes.code_generation(account)
        wanted = (value, _utc(valid_from), _utc(op.expires_at), pass_number, account, generation)
        async with self.core.db.transaction() as conn:
            seq = await repo.next_change(conn, app_id, op.unit)
            held = await repo.entry(conn, app_id, op.list, op.unit, op.key)
            live = held is not None and not held["dropped"] and held["expires_at"].timestamp() > now
            if live and held is not None and _content(held) == wanted:
                # the same entry again (a retried call): nothing changes, the number taken goes unused
                return reply
            if (
                not live
                and await repo.held_count(conn, app_id, op.list, op.unit, op.key, _utc(now))
                >= self.max_entries
            ):  # tombstones count: a unit's terminals sync them until the dropped entry would have expired
                raise QuotaExceeded(
                    f"at most {self.max_entries} entries or drops in list {op.list} at {op.unit} until they expire"
                )
            salt = await repo.salt(conn, app_id, op.list, op.unit, secrets.token_bytes(16))
            first, tags = None, None
            if account is not None and generation is not None:
                first, tags = self._tags(salt, account, generation, max(valid_from, now), op.expires_at)
            await repo.put(
                conn, app_id, op.list, op.unit, op.key, seq, dropped=False, value=value,
                valid_from=_utc(valid_from), expires_at=_utc(op.expires_at), pass_number=pass_number,
                account_id=account, generation=generation, first_bucket=first, tags=tags,
            )  # fmt: skip
            await repo.prune(conn, app_id, op.unit, _utc(now - PRUNE_AFTER_S))
        return reply

    def _tags(
        self, salt: bytes, account: int, generation: int, start: float, end: float
    ) -> tuple[int, bytes]:
        timing = self.codes.code_timing
        buckets = tag_buckets(
            start, end, period_s=timing.period_s, validity_s=timing.validity_s, skew_s=timing.skew_s
        )
        refs = self.codes.subject_refs(account, generation, buckets)
        return buckets.start, b"".join(holder_tag(salt, ref) for ref in refs)

    async def _drop(self, app_id: str, op: c.TerminalsDrop) -> bool:
        now = self.clock()
        async with self.core.db.transaction() as conn:
            if not await repo.lock_unit(conn, app_id, op.unit):
                return False
            held = await repo.entry(conn, app_id, op.list, op.unit, op.key)
            if held is None or held["dropped"] or held["expires_at"].timestamp() <= now:
                return False
            seq = await repo.next_change(conn, app_id, op.unit)
            await repo.put(
                conn, app_id, op.list, op.unit, op.key, seq, dropped=True, value=_EMPTY,
                valid_from=held["valid_from"], expires_at=held["expires_at"], pass_number=None, account_id=None,
                generation=None, first_bucket=None, tags=None,
            )  # fmt: skip
        return True

    # ---- the terminals domain's port (server.terminals: SceneLists) -----------------------------------

    async def prune_expired(self) -> tuple[int, int]:
        """Every unit's expired entries forget their resident now, and go a day later (a unit whose app holds
        nothing more is never pruned by a hold). Run periodically; how many were unbound and removed."""
        now = self.clock()
        async with self.core.db.connection() as conn:
            return await repo.prune_all(conn, _utc(now), _utc(now - PRUNE_AFTER_S))

    async def changes(self, kind: str, scene: str, unit: str | None, after: int) -> ListChanges:
        """The changes of the lists of `unit` held by the app bound to the scene, after change `after`."""
        period_s = self.codes.code_timing.period_s
        now = self.clock()
        async with self.core.db.connection() as conn:
            app_id = await repo.bound_app(conn, kind, scene)
            if app_id is None or unit is None:
                return ListChanges(app_id=app_id, unit=unit, cursor=0, more=False, period_s=period_s,
                                     reset=after > 0)  # fmt: skip
            await self._retag(conn, app_id, unit, now)
            upto = await repo.last_change(
                conn, app_id, unit
            )  # read first: every change up to it is committed
            reset = after > upto
            if reset:
                after = 0
            rows = await repo.changes(conn, app_id, unit, after, upto, _utc(now), SYNC_PAGE)
            salts = await repo.salts(conn, app_id, unit)
        more = len(rows) == SYNC_PAGE
        return ListChanges(
            app_id=app_id,
            unit=unit,
            cursor=rows[-1]["seq"] if more else upto,
            more=more,
            period_s=period_s,
            salts=[ListSalt(list=r["list"], salt=_b64(bytes(r["salt"]))) for r in salts],
            entries=[_entry(r) for r in rows],
            reset=reset,
        )

    async def _retag(self, conn: asyncpg.Connection, app_id: str, unit: str, now: float) -> None:
        """Make anew the tags of the unit's live bound entries whose resident moved to a new code generation
        (revoked their codes: a lost phone), each as a new change, before the terminals read the changes."""
        held = await repo.bound_generations(conn, app_id, unit, _utc(now))
        if not held:
            return
        current = await self.codes.code_generations(conn, sorted({r["account_id"] for r in held}))
        stale = [r for r in held if current.get(r["account_id"], 0) != r["generation"]]
        if not stale:
            return
        async with conn.transaction():
            for row in stale:
                seq = await repo.next_change(conn, app_id, unit)
                salt = await repo.salt(conn, app_id, row["list"], unit, secrets.token_bytes(16))
                generation = current.get(row["account_id"], 0)
                start = max(row["valid_from"].timestamp(), now)
                first, tags = self._tags(
                    salt, row["account_id"], generation, start, row["expires_at"].timestamp()
                )
                # a row changed since it was read (dropped, held anew) keeps its content; its number goes unused
                await repo.retag(
                    conn, app_id, row["list"], unit, row["key"], seq, generation, first, tags,
                    account_id=row["account_id"], was_generation=row["generation"],
                    window=(row["valid_from"], row["expires_at"]),
                )  # fmt: skip


def _content(row: asyncpg.Record) -> tuple[Any, ...]:
    return (
        bytes(row["value"]), row["valid_from"], row["expires_at"], row["pass_number"], row["account_id"],
        row["generation"],
    )  # fmt: skip


_decode_value = msgspec.json.Decoder()


def _entry(row: asyncpg.Record) -> ListEntry:
    if row["dropped"]:
        return ListEntry(list=row["list"], key=row["key"], seq=row["seq"], dropped=True)
    return ListEntry(
        list=row["list"],
        key=row["key"],
        seq=row["seq"],
        value=_decode_value.decode(bytes(row["value"])),
        valid_from=int(row["valid_from"].timestamp()),
        expires_at=int(row["expires_at"].timestamp()),
        pass_number=row["pass_number"],
        first_bucket=row["first_bucket"],
        tags=None if row["tags"] is None else _b64(bytes(row["tags"])),
    )
