"""The `ctx.db` facade: collections, index-fitted queries, and `Transaction`, the buffered atomic commit.

Re-exported by `yima_sdk.capabilities`; a concern of its own because a transaction also restricts which other
capabilities a handler may call while it is open (`OUT_OF_TRANSACTION`).
"""

from __future__ import annotations

import secrets
from typing import Any

import msgspec

from yima_sdk import contract as c
from yima_sdk._facade import _Facade
from yima_sdk.contract import Group, Record, RecordPage, Written

OUT_OF_TRANSACTION = frozenset({"db", "storage", "user", "log"})
"""Capabilities a handler may call while a `ctx.db.transaction()` is open; any other (a message, a charge: what
a failed commit could not take back) is refused."""


_BASE32 = "abcdefghijklmnopqrstuvwxyz234567"
_PAIRS = tuple(a + b for a in _BASE32 for b in _BASE32)
"""Every 10-bit group as its two base32 characters: an id is 12 look-ups (base64.b32encode, pure Python in
3.11, cost a transaction of two inserts ~10 µs)."""
_SHIFTS = tuple(range(110, -1, -10))


def new_id() -> str:
    """A fresh document id: 24 random lowercase base32 characters (120 bits), ASCII, unguessable."""
    bits = int.from_bytes(secrets.token_bytes(15))
    return "".join([_PAIRS[(bits >> shift) & 1023] for shift in _SHIFTS])


class Db(_Facade):
    """Collections declared in miniapp.toml with their indexes (`[collections.bookings] indexes = [...]`).

    Documents are JSON objects of at most 64 KiB, each with an id and a version. Queries (`find`, `count`,
    `aggregate`) must fit a declared index, else NotIndexed; writes count against the app's storage quota.
    """

    __slots__ = ()

    async def get(self, collection: str, id: str) -> Record | None:
        """The document `id`, or None."""
        record: Record | None = await self._call(c.DbGet(collection=collection, id=id))
        return record

    async def insert(self, collection: str, value: dict[str, Any], *, id: str | None = None) -> Written:
        """Insert `value` as document `id` (default: a new id) at version 1. Raises VersionConflict (the id
        exists), QuotaExceeded, InvalidArgument (not a JSON object, over 64 KiB, an unindexable value)."""
        written: Written = await self._call(c.DbInsert(collection=collection, value=value, id=id))
        return written

    async def update(
        self, collection: str, id: str, value: dict[str, Any], *, expected_version: int | None = None
    ) -> int:
        """Replace document `id`; returns the new version. Raises VersionConflict when `expected_version` is
        stale or there is no such document."""
        op = c.DbUpdate(collection=collection, id=id, value=value, expected_version=expected_version)
        return int(await self._call(op))

    async def delete(self, collection: str, id: str, *, expected_version: int | None = None) -> bool:
        """Remove document `id`; True if it existed. Raises VersionConflict when `expected_version` is stale."""
        op = c.DbDelete(collection=collection, id=id, expected_version=expected_version)
        return bool(await self._call(op))

    async def find(
        self,
        collection: str,
        where: dict[str, Any] | None = None,
        *,
        order_by: str | None = None,
        limit: int = 50,
        after: str | None = None,
    ) -> RecordPage:
        """Documents matching `where` on a declared index: `{"day": "2026-03-02"}` (equality),
        `{"day": {"gte": a, "lt": b}}` (range), `{"status": {"in": [...]}}`; sorted by `order_by` ("field",
        "-field" descending); `limit` (1-100) per page; `after`: the `cursor` of the previous page."""
        op = c.DbFind(collection=collection, where=where or {}, order_by=order_by, limit=limit, after=after)
        page: RecordPage = await self._call(op)
        return page

    async def count(self, collection: str, where: dict[str, Any] | None = None) -> int:
        """How many documents match `where` (as `find`)."""
        return int(await self._call(c.DbCount(collection=collection, where=where or {})))

    async def aggregate(
        self,
        collection: str,
        group_by: str,
        *,
        where: dict[str, Any] | None = None,
        sum: str | None = None,
    ) -> list[Group]:
        """Group the documents matching `where` by the indexed field `group_by`: per value its count and, when
        `sum` names a field, the sum of that field's numbers."""
        op = c.DbAggregate(collection=collection, group_by=group_by, where=where or {}, sum=sum)
        groups: list[Group] = await self._call(op)
        return groups

    def transaction(self) -> Transaction:
        """`async with ctx.db.transaction() as tx:` group writes to documents and counters into one atomic
        commit (see Transaction)."""
        return Transaction(self)

    async def _commit(self, writes: list[Any], reads: list[c.ReadCheck]) -> list[int]:
        # nested Structs as plain data: the bridge carries builtins, the host decodes them into the contract
        op = c.DbCommit(writes=writes, reads=reads)
        kwargs = msgspec.to_builtins(msgspec.structs.asdict(op))
        return [int(v) for v in c.reply_of(op, await self._send("commit", **kwargs))]


class Transaction:
    """Writes buffered in the sandbox and sent as one `db.commit` when the block ends without an exception.

    `get` reads through at once and remembers the version it saw; `insert`, `update`, `delete` and
    `counter_add` only buffer. At the end the platform applies every write in one database transaction if no
    document read has changed meanwhile, retrying on serialization failures within a deadline; otherwise
    VersionConflict (or CounterOutOfRange, QuotaExceeded) is raised by the `async with` and nothing is written.
    No database transaction is ever held open while the app runs. Inside the block only `db`, `storage`, `user`
    and `log` may be called: a notify or payments call there raises CapabilityDenied (it could not be undone).
    """

    __slots__ = ("_db", "_reads", "_writes", "results")

    def __init__(self, db: Db) -> None:
        self._db = db
        self._reads: dict[tuple[str, str], int] = {}
        self._writes: list[Any] = []
        self.results: list[int] = []
        """After the block: per write, the new version, 1/0 for a delete, the counter's new value."""

    async def __aenter__(self) -> Transaction:
        enter = getattr(self._db._proxy, "_enter_transaction", None)
        if enter is not None:
            enter()
        return self

    async def __aexit__(self, kind: Any, exc: Any, tb: Any) -> None:
        leave = getattr(self._db._proxy, "_leave_transaction", None)
        if leave is not None:
            leave()
        if kind is None and self._writes:
            reads = [c.ReadCheck(collection=k[0], id=k[1], version=v) for k, v in self._reads.items()]
            self.results = await self._db._commit(self._writes, reads)

    async def get(self, collection: str, id: str) -> Record | None:
        """The document now; the commit fails with VersionConflict if it changes before the end."""
        record = await self._db.get(collection, id)
        self._reads.setdefault((collection, id), 0 if record is None else record.version)
        return record

    def insert(self, collection: str, value: dict[str, Any], *, id: str | None = None) -> str:
        """Buffer an insert; returns the document's id (made here when not given)."""
        doc_id = id or new_id()
        self._writes.append(c.InsertWrite(collection=collection, id=doc_id, value=value))
        return doc_id

    def update(
        self, collection: str, id: str, value: dict[str, Any], *, expected_version: int | None = None
    ) -> None:
        """Buffer a replacement of document `id`."""
        write = c.UpdateWrite(collection=collection, id=id, value=value, expected_version=expected_version)
        self._writes.append(write)

    def delete(self, collection: str, id: str, *, expected_version: int | None = None) -> None:
        """Buffer a removal of document `id`."""
        self._writes.append(c.DeleteWrite(collection=collection, id=id, expected_version=expected_version))

    def counter_add(
        self, name: str, delta: int = 1, *, min: int | None = None, max: int | None = None
    ) -> None:
        """Buffer `storage.counter_add`: the whole commit fails with CounterOutOfRange if it leaves [min, max]."""
        self._writes.append(c.CounterWrite(name=name, delta=delta, min=min, max=max))
