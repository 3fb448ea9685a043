"""The `db` capability: collections declared in the app's manifest, documents with versions, queries on declared
indexes only, and commits of several writes (documents and storage counters) in one database transaction.

Operations are the db Structs of the SDK's capability contract; the query rules (key encoding, planning, cursors)
are the SDK's own (yima_sdk.query), shared with the simulator so both give the same answers:

    get(collection, id) -> Record | None          insert(collection, value, id=None) -> Written
    update(collection, id, value, expected_version=None) -> version     delete(...) -> bool
    find(collection, where, order_by, limit, after) -> RecordPage       count(collection, where) -> int
    aggregate(collection, group_by, where, sum) -> [Group]              commit(writes, reads) -> [int]

Design (docs/sdk.md, "db"): a document is one row of `miniapp_records` (jsonb body, version); each declared
index holds one order-preserving key per document in `miniapp_record_keys`, written in the same transaction as
the document, so `find` is a range scan of one btree plus primary-key lookups. Writes maintain the indexes of
every live version of the app, so a phased release that adds an index sees the writes of the stable one; an
index is built from the existing documents on its first query, and kept by every write after that even when no
live version declares it (a value it cannot hold marks it unbuilt instead), so declaring it again is right. A transaction never spans the bridge: the SDK
buffers the writes of `ctx.db.transaction()` and sends one `db.commit` with the versions it read, applied (commits.py)
in one short database transaction (documents locked in id order), retried on serialization failures and
deadlocks until its deadline. Single writes are commits of one write. A commit counts its keys and bytes in
one of the app's usage shards (miniapp_usage_shards, picked at random) so an app's commits never queue on one row
through their WAL flush; the quota is the app's row plus the shards (storage_repository.account_usage too).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import random
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import asyncpg
import msgspec
from yima_sdk import contract as c
from yima_sdk import query as q
from yima_sdk.capabilities import new_id
from yima_sdk.errors import CapabilityFailed, InvalidArgument, NotIndexed
from yima_sdk.manifest import Collection

from sandbox.capabilities import CallInfo
from server.db import Database
from server.platform.config import COMMIT_DEADLINE_S
from server.platform.db import commits
from server.platform.db import index_repository as index_repo
from server.platform.db import repository as repo
from server.platform.db.commits import Prepared
from server.platform.runtime.service import Runtime

_RETRY = (asyncpg.SerializationError, asyncpg.DeadlockDetectedError, asyncpg.LockNotAvailableError)
_Collections = dict[str, Collection]


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class AppDb:
    def __init__(self, db: Database, runtime: Runtime, clock: Callable[[], dt.datetime] = _now) -> None:
        self.db = db
        self.runtime = runtime
        self.clock = clock
        self._parsed: dict[tuple[str, str], _Collections] = {}
        """(app, version) -> its declared collections, for live versions only (see _collections)."""
        self._built: set[tuple[str, str, str, tuple[str, ...]]] = set()
        """Indexes this process saw built, per set of live versions (a release looks again)."""
        self._registered: dict[tuple[str, str], tuple[tuple[str, ...], set[str]]] = {}
        """(app, collection) -> (live versions when read, the indexes built for it): writes keep these too."""
        self.commit_deadline_s = COMMIT_DEADLINE_S
        """How long a commit may keep trying (PlatformSettings.db_commit_deadline_s); then `capability.failed`."""
        self.retries = 0
        """Commit attempts retried after a serialization failure, deadlock or lock timeout (this process)."""

    # ---- what the app declared ------------------------------------------------------------------------

    def _collections(self, app_id: str, version: str) -> _Collections:
        """The collections declared by this version of the app (the caller's)."""
        found = self._parsed.get((app_id, version))
        if found is None:
            live = self.runtime.live_version(app_id, version)
            manifest = live.manifest if live is not None else None
            found = msgspec.convert((manifest or {}).get("collections") or {}, _Collections)
            if manifest is not None:
                # A new version is live: forget the versions that are no longer, so releases never grow this.
                self._parsed = {
                    k: v for k, v in self._parsed.items() if self.runtime.live_version(*k) is not None
                }
                self._parsed[(app_id, version)] = found
        return found

    def _indexes(self, call: CallInfo, collection: str) -> dict[str, tuple[str, ...]]:
        return q.indexes_of(self._collections(call.app_id, call.version), collection)

    def _live(self, app_id: str) -> tuple[str, ...]:
        live = self.runtime.apps.get(app_id)
        return tuple(v.key for v in live.versions()) if live else ()

    async def _built_indexes(self, app_id: str, collection: str) -> set[str]:
        """The indexes built for this collection (read again when the app's live versions change)."""
        stamp = self._live(app_id)
        found = self._registered.get((app_id, collection))
        if found is None or found[0] != stamp:
            async with self.db.connection() as conn:
                found = (stamp, set(await index_repo.built_indexes(conn, app_id, collection)))
            self._registered[(app_id, collection)] = found
        return found[1]

    def _maintained(self, call: CallInfo, collection: str) -> dict[str, tuple[str, ...]]:
        """The indexes a write keeps: the caller's and those of every other live version of the app."""
        indexes = dict(self._indexes(call, collection))
        live = self.runtime.apps.get(call.app_id)
        for version in live.versions() if live else []:
            declared = self._collections(call.app_id, version.version).get(collection)
            if declared is not None:
                indexes.update(declared.index_fields)
        return indexes

    # ---- dispatch -------------------------------------------------------------------------------------

    async def handle(self, call: CallInfo, op: c.Operation) -> Any:
        match op:
            case c.DbGet():
                self._indexes(call, op.collection)
                async with self.db.connection() as conn:
                    row = await repo.get(conn, call.app_id, op.collection, op.id)
                return None if row is None else c.Record(id=op.id, value=row["body"], version=row["version"])
            case c.DbInsert():
                doc_id = op.id or new_id()
                insert = c.InsertWrite(collection=op.collection, id=doc_id, value=op.value)
                return c.Written(id=doc_id, version=(await self.commit(call, [insert], []))[0])
            case c.DbUpdate():
                update = c.UpdateWrite(
                    collection=op.collection, id=op.id, value=op.value, expected_version=op.expected_version
                )
                return (await self.commit(call, [update], []))[0]
            case c.DbDelete():
                delete = c.DeleteWrite(
                    collection=op.collection, id=op.id, expected_version=op.expected_version
                )
                return (await self.commit(call, [delete], []))[0] == 1
            case c.DbFind():
                return await self._find(call, op)
            case c.DbCount():
                query = q.plan(op.collection, self._indexes(call, op.collection), op.where, None)
                async with self.db.connection() as conn:
                    await self._ready(conn, call, op.collection, query.index)
                    return await index_repo.count(conn, call.app_id, op.collection, query.index, query.ranges)
            case c.DbAggregate():
                return await self._aggregate(call, op)
            case c.DbCommit():
                return await self.commit(call, op.writes, op.reads)
        raise NotIndexed(f"{c.operation_name(op)} is not a db operation")

    # ---- queries ------------------------------------------------------------------------------------

    async def _ready(
        self, conn: asyncpg.Connection, call: CallInfo, collection: str, index: str | None
    ) -> None:
        """Build `index` from the collection's documents unless it is built."""
        if index is None:
            return
        seen = (call.app_id, collection, index, self._live(call.app_id))
        if seen in self._built:
            return
        if not await index_repo.index_built(conn, call.app_id, collection, index):
            fields = self._indexes(call, collection)[index]
            async with conn.transaction():
                await index_repo.lock_index(conn, call.app_id, collection, index)
                if not await index_repo.index_built(conn, call.app_id, collection, index):
                    keys = []
                    for row in await index_repo.bodies(conn, call.app_id, collection):
                        try:
                            keys.append((q.encode_key(fields, row["body"]), row["doc_id"]))
                        except InvalidArgument:
                            continue  # a value this index cannot hold, written while no version declared it
                    await index_repo.put_index(conn, call.app_id, collection, index, keys, self.clock())
            cached = self._registered.get((call.app_id, collection))
            if cached is not None:
                cached[1].add(index)
        self._built.add(seen)

    async def _find(self, call: CallInfo, op: c.DbFind) -> c.RecordPage:
        query = q.plan(op.collection, self._indexes(call, op.collection), op.where, op.order_by)
        after = q.decode_cursor(query, op.after) if op.after is not None else None
        async with self.db.connection() as conn:
            await self._ready(conn, call, op.collection, query.index)
            rows = await index_repo.find(
                conn,
                call.app_id,
                op.collection,
                query.index,
                query.ranges,
                query.descending,
                after,
                op.limit + 1,
            )
        page = rows[: op.limit]
        cursor = q.encode_cursor(query, page[-1]["key"], page[-1]["doc_id"]) if len(rows) > op.limit else None
        items = [c.Record(id=r["doc_id"], value=r["body"], version=r["version"]) for r in page]
        return c.RecordPage(items=items, cursor=cursor)

    async def _aggregate(self, call: CallInfo, op: c.DbAggregate) -> list[c.Group]:
        indexes = self._indexes(call, op.collection)
        q.group_by_index(indexes, op.collection, op.group_by)
        query = q.plan(op.collection, indexes, op.where, None)
        async with self.db.connection() as conn:
            await self._ready(conn, call, op.collection, query.index)
            rows = await index_repo.groups(
                conn, call.app_id, op.collection, query.index, query.ranges, op.group_by, op.sum
            )
        groups: dict[bytes, list[Any]] = {}
        for row in rows:  # a missing field and a JSON null are one group, as 1 and 1.0 are
            group = groups.setdefault(q.encode_part(op.group_by, row["value"]), [0, None])
            group[0] += row["n"]
            if row["total"] is not None:
                group[1] = (group[1] or Decimal(0)) + row["total"]
        return [
            c.Group(
                key=q.decode_part(part)[0],
                count=n,
                sum=None if op.sum is None else q.group_sum(total or Decimal(0)),
            )
            for part, (n, total) in sorted(groups.items())[: c.MAX_GROUPS]
        ]

    # ---- writes -------------------------------------------------------------------------------------

    async def commit(self, call: CallInfo, writes: list[c.Write], reads: list[c.ReadCheck]) -> list[int]:
        """Apply `writes` all or nothing if every read is unchanged, retrying transient failures until the
        deadline; each attempt is one short transaction of its own (nothing is held between attempts)."""
        prepared, dropped = await self._prepare(call, writes, reads)
        simple = not reads and not dropped and commits.simple(prepared)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.commit_deadline_s
        try:
            async with asyncio.timeout_at(deadline):
                while True:
                    try:
                        if simple:
                            async with self.db.connection() as conn:
                                results = await commits.apply_simple(
                                    conn, call.app_id, prepared, self.clock()
                                )
                        else:
                            async with self.db.transaction() as conn:
                                results = await commits.apply(
                                    conn, call.app_id, prepared, reads, dropped, self.clock()
                                )
                    except _RETRY as exc:
                        self.retries += 1
                        self._log_retry(call, exc)
                        await asyncio.sleep(random.uniform(0.001, 0.01))
                    else:
                        for collection, index in dropped:
                            self._registered.get((call.app_id, collection), ((), set()))[1].discard(index)
                        return results
        except TimeoutError:
            raise CapabilityFailed("the commit did not get through in time; nothing was written") from None

    async def _prepare(
        self, call: CallInfo, writes: list[c.Write], reads: list[c.ReadCheck]
    ) -> tuple[list[Prepared], set[tuple[str, str]]]:
        """Each write with its value's size and index keys, and the built indexes that no live version declares
        any more and a value cannot be held by (the commit marks them unbuilt, so declaring one again rebuilds
        it). The refusals that need no database come first."""
        for read in reads:
            self._indexes(call, read.collection)
        prepared: list[Prepared] = []
        dropped: set[tuple[str, str]] = set()
        for write in writes:
            if isinstance(write, c.CounterWrite):
                prepared.append((write, 0, {}))
                continue
            indexes = self._maintained(call, write.collection)
            if isinstance(write, c.DeleteWrite):
                prepared.append((write, 0, {}))
                continue
            size = q.check_value(write.value, c.MAX_VALUE_BYTES)
            keys = q.index_keys(indexes, write.value)
            # indexes built once and declared by no live version are kept too: declared again, they are right
            for name in await self._built_indexes(call.app_id, write.collection) - set(indexes):
                try:
                    keys[name] = q.encode_key(name.split("+"), write.value)
                except InvalidArgument:
                    dropped.add((write.collection, name))
            prepared.append((write, size, keys))
        return prepared, dropped

    def _log_retry(self, call: CallInfo, exc: asyncpg.PostgresError) -> None:
        """Tell the app's log that a commit was retried (what a developer reads when commits contend)."""
        host = getattr(self.runtime, "host", None)
        if host is not None:
            host.app_log(
                f"{call.app_id}@{call.version}",
                "info",
                "commit retried",
                sqlstate=exc.sqlstate,
                reason=type(exc).__name__,
            )
