"""The storage capability: per-app documents in PostgreSQL with versions and compare-and-set, bounded
counters, prefix listing with a cursor, and per-app quotas.

Operations are the storage Structs of the SDK's capability contract (yima_sdk.contract), which also holds the
argument constraints (key length, limits, integer ranges):

    get(key) -> value | None                      get_document(key) -> {"key", "value", "version"} | None
    put(key, value, expected_version=None) -> int   None: unconditional; 0: create only; n: replace version n
    delete(key, expected_version=None) -> bool
    list(prefix="", cursor=None, limit=50) -> {"items": [{"key","value","version"}], "cursor"}
    counter_add(name, delta=1, min=None, max=None) -> int      never leaves [min, max]
    counter_get(name) -> int

Refusals: VersionConflict (`storage.version_conflict`), CounterOutOfRange (`storage.counter_out_of_range`,
nothing changes), QuotaExceeded (the app's key or byte quota; counters count as keys), InvalidArgument (a value
that is not JSON or over 64 KiB; the contract refuses the other bad arguments before this module sees them).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

import msgspec
from yima_sdk import contract as c
from yima_sdk.errors import (
    CapabilityDenied,
    CounterOutOfRange,
    InvalidArgument,
    QuotaExceeded,
    VersionConflict,
)

from server.db import Database
from server.platform.storage import repository as repo

COLLECTION = ""  # the SDK has one namespace per app today; the column keeps room for named collections
_json = msgspec.json.Encoder()


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class AppStorage:
    def __init__(self, db: Database, clock: Callable[[], dt.datetime] = _now) -> None:
        self.db = db
        self.clock = clock

    async def handle(self, app_id: str, op: c.Operation) -> Any:
        """Serve one storage operation of the contract (already decoded and checked against its Struct)."""
        match op:
            case c.StorageGet() | c.StorageGetDocument():
                async with self.db.connection() as conn:
                    row = await repo.get(conn, app_id, COLLECTION, op.key)
                if row is None:
                    return None
                if isinstance(op, c.StorageGet):
                    return row["value"]
                return c.Document(key=op.key, value=row["value"], version=row["version"])
            case c.StoragePut():
                return await self.put(app_id, op.key, op.value, op.expected_version)
            case c.StorageDelete():
                return await self.delete(app_id, op.key, op.expected_version)
            case c.StorageList():
                return await self.list(app_id, op.prefix, op.cursor, op.limit)
            case c.StorageCounterAdd():
                return await self.counter_add(app_id, op.name, op.delta, op.min, op.max)
            case c.StorageCounterGet():
                async with self.db.connection() as conn:
                    return await repo.counter(conn, app_id, COLLECTION, op.name)
        raise CapabilityDenied(f"{c.operation_name(op)} is not a storage operation")

    async def put(self, app_id: str, key: str, value: Any, expected: int | None) -> int:
        try:
            size = len(_json.encode(value))
        except (TypeError, msgspec.EncodeError):
            raise InvalidArgument(
                "storage values must be JSON-able (dicts, lists, strings, numbers)"
            ) from None
        if size > c.MAX_VALUE_BYTES:
            raise InvalidArgument(f"value of {size} bytes is over the {c.MAX_VALUE_BYTES}-byte limit")
        now = self.clock()
        async with self.db.transaction() as conn:
            row = await repo.current(conn, app_id, COLLECTION, key)
            current = 0 if row is None else row["version"]
            if expected is not None and expected != current:
                raise VersionConflict(f"{key!r} is at version {current}, not {expected}")
            if row is None:
                if not await repo.insert(conn, app_id, COLLECTION, key, value, size, now):
                    # created by a concurrent put between our read and our insert
                    raise VersionConflict(f"{key!r} was created meanwhile; re-read and retry")
                new_version, keys, grown = 1, 1, size
            else:
                updated = await repo.update(conn, app_id, COLLECTION, key, value, size, now, current)
                assert updated is not None  # the row is locked
                new_version, keys, grown = updated, 0, size - row["size_bytes"]
            if not await repo.account_usage(conn, app_id, keys, grown):
                raise QuotaExceeded("the app's storage quota is used up")
        return new_version

    async def delete(self, app_id: str, key: str, expected: int | None) -> bool:
        async with self.db.transaction() as conn:
            row = await repo.current(conn, app_id, COLLECTION, key)
            current = 0 if row is None else row["version"]
            if expected is not None and expected != current:
                raise VersionConflict(f"{key!r} is at version {current}, not {expected}")
            if row is None:
                return False
            await repo.delete(conn, app_id, COLLECTION, key)
            await repo.account_usage(conn, app_id, -1, -row["size_bytes"])
        return True

    async def list(self, app_id: str, prefix: str, cursor: str | None, limit: int) -> c.Page:
        async with self.db.connection() as conn:
            rows = await repo.list_prefix(conn, app_id, COLLECTION, prefix, cursor or "", limit + 1)
        page = rows[:limit]
        return c.Page(
            items=[c.Document(key=r["key"], value=r["value"], version=r["version"]) for r in page],
            cursor=page[-1]["key"] if len(rows) > limit else None,
        )

    async def counter_add(
        self, app_id: str, name: str, delta: int, lower: int | None, upper: int | None
    ) -> int:
        now = self.clock()
        async with self.db.transaction() as conn:
            # a counter is a key: a new one counts against the key quota (or is not created at all)
            created = await repo.ensure_counter(conn, app_id, COLLECTION, name, now)
            if created and not await repo.account_usage(conn, app_id, 1, 0):
                raise QuotaExceeded("the app's storage quota is used up")
        async with self.db.transaction() as conn:
            value = await repo.add_bounded(conn, app_id, COLLECTION, name, delta, lower, upper, now)
        if value is None:
            raise CounterOutOfRange(f"counter {name!r} would leave [{lower}, {upper}]; it is unchanged")
        return value
