"""The simulated `db` capability: collections in memory, answering through the same planner, key encoding and
cursors as the platform (yima_sdk.query), so queries give the same documents in the same order with the same
errors. Queries scan the collection (the simulator holds a developer's test data, not a county's)."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import msgspec

from yima_sdk import contract as c
from yima_sdk import query as q
from yima_sdk.capabilities import new_id
from yima_sdk.errors import CounterOutOfRange, NotIndexed, QuotaExceeded, VersionConflict

if TYPE_CHECKING:
    from yima_sdk.simulator._platform import SimulatedPlatform

__all__ = ["SimulatedDb"]


@dataclass(frozen=True)
class _Record:
    value: dict[str, Any]
    version: int
    size: int


class SimulatedDb:
    """`db.*` operations of one simulated app."""

    def __init__(self, platform: SimulatedPlatform) -> None:
        self.platform = platform
        self.records: dict[tuple[str, str], _Record] = {}

    def _indexes(self, collection: str) -> dict[str, tuple[str, ...]]:
        return q.indexes_of(self.platform.manifest.collections, collection)

    def handle(self, op: c.Operation) -> Any:
        match op:
            case c.DbGet():
                self._indexes(op.collection)
                found = self.records.get((op.collection, op.id))
                return None if found is None else c.Record(id=op.id, value=found.value, version=found.version)
            case c.DbInsert():
                doc_id = op.id or new_id()
                write = c.InsertWrite(collection=op.collection, id=doc_id, value=op.value)
                return c.Written(id=doc_id, version=self.commit([write], [])[0])
            case c.DbUpdate():
                update = c.UpdateWrite(
                    collection=op.collection, id=op.id, value=op.value, expected_version=op.expected_version
                )
                return self.commit([update], [])[0]
            case c.DbDelete():
                delete = c.DeleteWrite(
                    collection=op.collection, id=op.id, expected_version=op.expected_version
                )
                return self.commit([delete], [])[0] == 1
            case c.DbFind():
                return self._find(op)
            case c.DbCount():
                query = q.plan(op.collection, self._indexes(op.collection), op.where, None)
                return len(self._matches(op.collection, query))
            case c.DbAggregate():
                return self._aggregate(op)
            case c.DbCommit():
                return self.commit(op.writes, op.reads)
        raise NotIndexed(f"{c.operation_name(op)} is not a db operation")

    # ---- writes -------------------------------------------------------------------------------------

    def commit(self, writes: list[c.Write], reads: list[c.ReadCheck]) -> list[int]:
        """All writes or none, as the platform's one database transaction, refusing in the platform's order:
        undeclared collections and bad values first, then changed reads, then each write in turn, the quota last."""
        for read in reads:
            self._indexes(read.collection)
        values: list[Any] = []
        for write in writes:
            value = None
            if not isinstance(write, c.CounterWrite):
                indexes = self._indexes(write.collection)
                if not isinstance(write, c.DeleteWrite):
                    size = q.check_value(write.value, c.MAX_VALUE_BYTES)
                    q.index_keys(indexes, write.value)  # refuses a value an index cannot hold
                    value = _Record(msgspec.json.decode(msgspec.json.encode(write.value)), 0, size)
            values.append(value)
        for read in reads:
            found = self.records.get((read.collection, read.id))
            if (0 if found is None else found.version) != read.version:
                raise VersionConflict(f"{read.collection}/{read.id} changed since the transaction read it")
        space = self.platform.space
        docs: dict[tuple[str, str], _Record | None] = {}
        counters: dict[str, int] = {}
        results: list[int] = []
        new_keys = 0
        for write, prepared in zip(writes, values, strict=True):
            if isinstance(write, c.CounterWrite):
                if write.name not in space.counters and write.name not in counters:
                    new_keys += 1
                number = counters.get(write.name, space.counters.get(write.name, 0)) + write.delta
                if (write.min is not None and number < write.min) or (
                    write.max is not None and number > write.max
                ):
                    raise CounterOutOfRange(
                        f"counter {write.name!r} would leave [{write.min}, {write.max}]; nothing was written"
                    )
                counters[write.name] = number
                results.append(number)
                continue
            at = (write.collection, write.id)
            current = docs[at] if at in docs else self.records.get(at)
            if isinstance(write, c.DeleteWrite):
                _expect(at, current, write.expected_version)
                results.append(0 if current is None else 1)
                new_keys -= 0 if current is None else 1
                docs[at] = None
                continue
            assert prepared is not None
            if isinstance(write, c.InsertWrite):
                if current is not None:
                    raise VersionConflict(f"{write.collection}/{write.id} exists already")
                new_keys += 1
                version = 1
            else:
                if current is None:
                    raise VersionConflict(f"{write.collection}/{write.id} does not exist")
                _expect(at, current, write.expected_version)
                version = current.version + 1
            docs[at] = _Record(prepared.value, version, prepared.size)
            results.append(version)
        if new_keys > 0 and (
            self.platform.switches.quota_exceeded or self._keys() + new_keys > self.platform.storage_quota
        ):
            raise QuotaExceeded("the app's storage quota is used up")
        for at, record in docs.items():
            if record is None:
                self.records.pop(at, None)
            else:
                self.records[at] = record
        space.counters.update(counters)
        return results

    def _keys(self) -> int:
        # documents, counters and records share the key quota, as in production
        return len(self.platform.space.docs) + len(self.platform.space.counters) + len(self.records)

    # ---- queries ------------------------------------------------------------------------------------

    def _matches(self, collection: str, query: q.Plan) -> list[tuple[bytes, str, _Record]]:
        fields = self._indexes(collection)[query.index] if query.index is not None else ()
        found = []
        for (coll, doc_id), record in self.records.items():
            if coll == collection:
                key = q.encode_key(fields, record.value)
                if q.in_ranges(query, key):
                    found.append((key, doc_id, record))
        found.sort(key=lambda row: (row[0], row[1]), reverse=query.descending)
        return found

    def _find(self, op: c.DbFind) -> c.RecordPage:
        query = q.plan(op.collection, self._indexes(op.collection), op.where, op.order_by)
        rows = self._matches(op.collection, query)
        if op.after is not None:
            after = q.decode_cursor(query, op.after)
            rows = [r for r in rows if ((r[0], r[1]) < after if query.descending else (r[0], r[1]) > after)]
        page = rows[: op.limit]
        cursor = q.encode_cursor(query, page[-1][0], page[-1][1]) if len(rows) > op.limit else None
        items = [
            c.Record(id=doc_id, value=record.value, version=record.version) for _, doc_id, record in page
        ]
        return c.RecordPage(items=items, cursor=cursor)

    def _aggregate(self, op: c.DbAggregate) -> list[c.Group]:
        indexes = self._indexes(op.collection)
        q.group_by_index(indexes, op.collection, op.group_by)
        query = q.plan(op.collection, indexes, op.where, None)
        groups: dict[bytes, list[Any]] = {}
        for _, _, record in self._matches(op.collection, query):
            part = q.encode_part(op.group_by, record.value.get(op.group_by))
            group = groups.setdefault(part, [0, None])
            group[0] += 1
            amount = q.number(record.value.get(op.sum)) if op.sum is not None else None
            if amount is not None:
                group[1] = (group[1] or Decimal(0)) + amount
        return [
            c.Group(
                key=q.decode_part(part)[0],
                count=count,
                sum=None if op.sum is None else q.group_sum(total or Decimal(0)),
            )
            for part, (count, total) in sorted(groups.items())[: c.MAX_GROUPS]
        ]


def _expect(at: tuple[str, str], current: _Record | None, expected: int | None) -> None:
    if expected is None:
        return
    version = 0 if current is None else current.version
    if version != expected:
        raise VersionConflict(f"{at[0]}/{at[1]} is at version {version}, not {expected}")
