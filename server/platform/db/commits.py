"""How a `ctx.db` commit's prepared writes reach the database: as one statement when they are only counter
additions and new documents (`apply_simple`), else in one transaction that locks what it reads, replaces or removes
(`apply`). service.py (`AppDb.commit`) prepares the writes and retries these on transient failures.
"""

from __future__ import annotations

import datetime as dt
import random

import asyncpg
import msgspec
from yima_sdk import contract as c
from yima_sdk.errors import CounterOutOfRange, QuotaExceeded, VersionConflict

from server.platform.db import index_repository as index_repo
from server.platform.db import repository as repo
from server.platform.storage.service import COLLECTION as COUNTERS

Prepared = tuple[c.Write, int, dict[str, bytes]]
"""A write with its value's size in bytes and its index keys (name -> key)."""
_JSON = msgspec.json.Encoder()


def simple(prepared: list[Prepared]) -> bool:
    """Only counter additions (each name once) and inserts (each id once): one statement can apply them."""
    names: set[str] = set()
    ids: set[tuple[str, str]] = set()
    for write, _, _ in prepared:
        if isinstance(write, c.CounterWrite):
            if write.name in names:
                return False
            names.add(write.name)
        elif isinstance(write, c.InsertWrite):
            if (write.collection, write.id) in ids:
                return False
            ids.add((write.collection, write.id))
        else:
            return False
    return True


async def apply_simple(
    conn: asyncpg.Connection, app_id: str, prepared: list[Prepared], now: dt.datetime
) -> list[int]:
    """Counters and new documents only: one statement, one round trip (repo.commit_simple)."""
    counters = [(w.name, w.delta, w.min, w.max) for w, _, _ in prepared if isinstance(w, c.CounterWrite)]
    documents = [
        (w.collection, w.id, _JSON.encode(w.value).decode(), size, keys)
        for w, size, keys in prepared
        if isinstance(w, c.InsertWrite)
    ]
    try:
        counted = await repo.commit_simple(
            conn, app_id, COUNTERS, counters, documents, random.randrange(repo.SHARDS), now
        )
    except asyncpg.RaiseError as exc:
        reason, subject = str(exc.args[0] if exc.args else ""), getattr(exc, "detail", "") or ""
        if reason == "yima.db:counter":
            write = next(w for w, _, _ in prepared if isinstance(w, c.CounterWrite) and w.name == subject)
            raise CounterOutOfRange(
                f"counter {subject!r} would leave [{write.min}, {write.max}]; nothing was written"
            ) from None
        if reason == "yima.db:exists":
            raise VersionConflict(f"{subject} exists already") from None
        if reason == "yima.db:quota":
            raise QuotaExceeded("the app's storage quota is used up") from None
        raise
    return [counted[w.name] if isinstance(w, c.CounterWrite) else 1 for w, _, _ in prepared]


async def apply(
    conn: asyncpg.Connection,
    app_id: str,
    prepared: list[Prepared],
    reads: list[c.ReadCheck],
    dropped: set[tuple[str, str]],
    now: dt.datetime,
) -> list[int]:
    """Apply the writes in the caller's transaction, after checking that every read is unchanged; each write's
    result (a version, a counter's value, 1 or 0 for a delete)."""
    for collection, index in sorted(dropped):
        await index_repo.unbuild_index(conn, app_id, collection, index)
    # Lock what is read, replaced or removed, in (collection, id) order so commits never deadlock on
    # documents; an insert needs no lock: the primary key refuses an id that exists.
    touched = {(r.collection, r.id) for r in reads}
    touched |= {(w.collection, w.id) for w, _, _ in prepared if isinstance(w, c.UpdateWrite | c.DeleteWrite)}
    locked = await repo.lock(conn, app_id, sorted(touched)) if touched else {}
    state: dict[tuple[str, str], tuple[int, int] | None] = {
        at: (row["version"], row["size_bytes"]) if (row := locked.get(at)) is not None else None
        for at in touched
    }
    for read in reads:
        current = state[(read.collection, read.id)]
        if (0 if current is None else current[0]) != read.version:
            raise VersionConflict(f"{read.collection}/{read.id} changed since the transaction read it")
    results: list[int] = []
    new_keys = grown = 0
    for write, size, keys in prepared:
        if isinstance(write, c.CounterWrite):
            added = await repo.counter_add(
                conn, app_id, COUNTERS, write.name, write.delta, write.min, write.max, now
            )
            if added is None or not (
                (write.min is None or added[0] >= write.min) and (write.max is None or added[0] <= write.max)
            ):
                raise CounterOutOfRange(
                    f"counter {write.name!r} would leave [{write.min}, {write.max}]; nothing was written"
                )
            new_keys += added[1]
            results.append(added[0])
            continue
        at = (write.collection, write.id)
        current = state.get(at)
        if isinstance(write, c.DeleteWrite):
            expect(at, current, write.expected_version)
            if current is not None:
                await repo.delete(conn, app_id, write.collection, write.id)
                new_keys, grown = new_keys - 1, grown - current[1]
            results.append(0 if current is None else 1)
            state[at] = None
        elif isinstance(write, c.InsertWrite):
            if current is not None or not await repo.insert(
                conn, app_id, write.collection, write.id, write.value, size, keys, now
            ):
                raise VersionConflict(f"{write.collection}/{write.id} exists already")
            new_keys, grown = new_keys + 1, grown + size
            results.append(1)
            state[at] = (1, size)
        else:
            if current is None:
                raise VersionConflict(f"{write.collection}/{write.id} does not exist")
            expect(at, current, write.expected_version)
            version = current[0] + 1
            await repo.replace(
                conn, app_id, write.collection, write.id, write.value, size, keys, version, now
            )
            grown += size - current[1]
            results.append(version)
            state[at] = (version, size)
    shard = random.randrange(repo.SHARDS)
    if (new_keys or grown) and not await repo.count_usage(conn, app_id, shard, new_keys, grown):
        raise QuotaExceeded("the app's storage quota is used up")
    return results


def expect(at: tuple[str, str], current: tuple[int, int] | None, expected: int | None) -> None:
    """Refuse a write whose expected version is not the document's (0: absent)."""
    if expected is None:
        return
    version = 0 if current is None else current[0]
    if version != expected:
        raise VersionConflict(f"{at[0]}/{at[1]} is at version {version}, not {expected}")
