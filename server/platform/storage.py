"""The storage capability: per-app documents in PostgreSQL with versions and compare-and-set, bounded
counters, prefix listing with a cursor, and per-app quotas.

Operations follow the SDK's wire contract (yima_sdk.capabilities.Storage; arguments as keywords):

    get(key) -> value | None                      get_document(key) -> {"key", "value", "version"} | None
    put(key, value, expected_version=None) -> int   None: unconditional; 0: create only; n: replace version n
    delete(key, expected_version=None) -> bool
    list(prefix="", cursor=None, limit=50) -> {"items": [{"key","value","version"}], "cursor"}
    counter_add(name, delta=1, min=None, max=None) -> int      never leaves [min, max]
    counter_get(name) -> int

Refusals: VersionConflict (`storage.version_conflict`), CounterOutOfRange (`storage.counter_out_of_range`,
nothing changes), QuotaExceeded (the app's key or byte quota; counters count as keys), InvalidArgument (bad
key, value, limit).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

import msgspec
from yima_sdk.errors import (
    CapabilityDenied,
    CounterOutOfRange,
    InvalidArgument,
    QuotaExceeded,
    VersionConflict,
)

from server.db import Database
from server.platform import storage_repository as repo

MAX_KEY = 200
MAX_VALUE_BYTES = 64 * 1024
MAX_LIST = 100
COLLECTION = ""  # the SDK has one namespace per app today; the column keeps room for named collections
_json = msgspec.json.Encoder()

_OPS: dict[str, tuple[str, ...]] = {
    "get": ("key",),
    "get_document": ("key",),
    "put": ("key", "value", "expected_version"),
    "delete": ("key", "expected_version"),
    "list": ("prefix", "cursor", "limit"),
    "counter_add": ("name", "delta", "min", "max"),
    "counter_get": ("name",),
}


def arguments(op: str, names: tuple[str, ...], args: list[Any], kwargs: dict[str, Any]) -> dict[str, Any]:
    """Positional or keyword arguments by name (the SDK sends keywords); anything else is InvalidArgument."""
    if len(args) > len(names) or set(kwargs) - set(names):
        raise InvalidArgument(f"{op} takes {', '.join(names)}")
    return dict(zip(names, args, strict=False)) | kwargs


def _key(value: Any) -> str:
    if not isinstance(value, str) or not 1 <= len(value) <= MAX_KEY or any(ord(c) < 32 for c in value):
        raise InvalidArgument(f"keys are strings of 1-{MAX_KEY} characters without control characters")
    return value


def _int(value: Any, name: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or abs(value) > 2**62:
        raise InvalidArgument(f"{name} must be an integer")
    return value


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class AppStorage:
    def __init__(self, db: Database, clock: Callable[[], dt.datetime] = _now) -> None:
        self.db = db
        self.clock = clock

    async def handle(self, app_id: str, op: str, args: list[Any], kwargs: dict[str, Any]) -> Any:
        names = _OPS.get(op)
        if names is None:
            raise CapabilityDenied(f"storage.{op} is not a capability operation of this platform")
        a = arguments(f"storage.{op}", names, args, kwargs)
        match op:
            case "get" | "get_document":
                key = _key(a.get("key"))
                async with self.db.connection() as conn:
                    row = await repo.get(conn, app_id, COLLECTION, key)
                if row is None:
                    return None
                return (
                    row["value"]
                    if op == "get"
                    else {"key": key, "value": row["value"], "version": row["version"]}
                )
            case "put":
                if "value" not in a:
                    raise InvalidArgument("storage.put needs a value")
                return await self.put(
                    app_id,
                    _key(a.get("key")),
                    a["value"],
                    _int(a.get("expected_version"), "expected_version"),
                )
            case "delete":
                return await self.delete(
                    app_id, _key(a.get("key")), _int(a.get("expected_version"), "expected_version")
                )
            case "list":
                return await self.list(app_id, a.get("prefix", ""), a.get("cursor"), a.get("limit", 50))
            case "counter_add":
                delta = _int(a.get("delta", 1), "delta")
                return await self.counter_add(
                    app_id,
                    _key(a.get("name")),
                    1 if delta is None else delta,
                    _int(a.get("min"), "min"),
                    _int(a.get("max"), "max"),
                )
            case _:
                async with self.db.connection() as conn:
                    return await repo.counter(conn, app_id, COLLECTION, _key(a.get("name")))

    async def put(self, app_id: str, key: str, value: Any, expected: int | None) -> int:
        try:
            size = len(_json.encode(value))
        except (TypeError, msgspec.EncodeError):
            raise InvalidArgument(
                "storage values must be JSON-able (dicts, lists, strings, numbers)"
            ) from None
        if size > MAX_VALUE_BYTES:
            raise InvalidArgument(f"value of {size} bytes is over the {MAX_VALUE_BYTES}-byte limit")
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

    async def list(self, app_id: str, prefix: Any, cursor: Any, limit: Any) -> dict[str, Any]:
        if not isinstance(prefix, str) or len(prefix) > MAX_KEY:
            raise InvalidArgument("prefix must be a string")
        if cursor is not None and not isinstance(cursor, str):
            raise InvalidArgument("cursor must be the string a previous page returned")
        if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_LIST:
            raise InvalidArgument(f"limit must be 1-{MAX_LIST}")
        async with self.db.connection() as conn:
            rows = await repo.list_prefix(conn, app_id, COLLECTION, prefix, cursor or "", limit + 1)
        page = rows[:limit]
        return {
            "items": [{"key": r["key"], "value": r["value"], "version": r["version"]} for r in page],
            "cursor": page[-1]["key"] if len(rows) > limit else None,
        }

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
