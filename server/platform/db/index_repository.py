"""All SQL of `ctx.db` indexes: which are built, their builds from existing documents, and the reads that go
through them (pages, counts, groups). Documents and their writes are repository.py.

Every statement is keyed by the app id the sandbox host vouches for, never by anything the app sends. Ranges
come from the SDK's planner (yima_sdk.query): half-open [lo, hi) byte ranges of one index, sorted and disjoint,
scanned one after another in (key, doc_id) order, so a page is one short index range scan per range.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import asyncpg


def _page_sql(descending: bool, after: bool) -> str:
    order = "DESC" if descending else ""
    beyond = f" AND (key, doc_id) {'<' if descending else '>'} ($6, $7)" if after else ""
    limit = "$8" if after else "$6"
    return (
        "SELECT e.key, e.doc_id, d.body, d.version FROM ("  # noqa: S608
        " SELECT p.key, p.doc_id FROM unnest($4::bytea[], $5::bytea[]) WITH ORDINALITY AS r(lo, hi, n)"
        " CROSS JOIN LATERAL ("
        f"  SELECT key, doc_id FROM miniapp_record_keys"
        "   WHERE app_id = $1 AND collection = $2 AND index_name = $3 AND key >= r.lo AND key < r.hi"
        f"{beyond} ORDER BY key {order}, doc_id {order} LIMIT {limit}) p"
        f" ORDER BY r.n {order}, p.key {order}, p.doc_id {order} LIMIT {limit}) e"
        " JOIN miniapp_records d ON d.app_id = $1 AND d.collection = $2 AND d.doc_id = e.doc_id"
        f" ORDER BY e.key {order}, e.doc_id {order}"
    )


def _scan_sql(descending: bool, after: bool) -> str:
    order = "DESC" if descending else ""
    beyond = f" AND doc_id {'<' if descending else '>'} $3" if after else ""
    return (
        "SELECT ''::bytea AS key, doc_id, body, version FROM miniapp_records"  # noqa: S608
        f" WHERE app_id = $1 AND collection = $2{beyond} ORDER BY doc_id {order} LIMIT {'$4' if after else '$3'}"
    )


_PAGES = {(desc, after): _page_sql(desc, after) for desc in (False, True) for after in (False, True)}
_SCANS = {(desc, after): _scan_sql(desc, after) for desc in (False, True) for after in (False, True)}


async def find(
    conn: asyncpg.Connection,
    app_id: str,
    collection: str,
    index: str | None,
    ranges: list[tuple[bytes, bytes]],
    descending: bool,
    after: tuple[bytes, str] | None,
    limit: int,
) -> list[asyncpg.Record]:
    """Up to `limit` documents of the ranges of `index` (None: the whole collection by id), in (key, id) order
    or reversed, after the position `after`."""
    beyond: list[Any] = [] if after is None else [after[1]]
    if index is None:
        return await conn.fetch(_SCANS[(descending, after is not None)], app_id, collection, *beyond, limit)
    if after is not None:
        beyond = [after[0], after[1]]
    return await conn.fetch(
        _PAGES[(descending, after is not None)],
        app_id,
        collection,
        index,
        [lo for lo, _ in ranges],
        [hi for _, hi in ranges],
        *beyond,
        limit,
    )


async def count(
    conn: asyncpg.Connection,
    app_id: str,
    collection: str,
    index: str | None,
    ranges: list[tuple[bytes, bytes]],
) -> int:
    if index is None:
        found = await conn.fetchval(
            "SELECT count(*) FROM miniapp_records WHERE app_id = $1 AND collection = $2", app_id, collection
        )
    else:
        found = await conn.fetchval(
            "SELECT coalesce(sum(c.n), 0) FROM unnest($4::bytea[], $5::bytea[]) AS r(lo, hi)"
            " CROSS JOIN LATERAL (SELECT count(*) AS n FROM miniapp_record_keys WHERE app_id = $1 AND collection = $2"
            " AND index_name = $3 AND key >= r.lo AND key < r.hi) c",
            app_id,
            collection,
            index,
            [lo for lo, _ in ranges],
            [hi for _, hi in ranges],
        )
    return int(found)


async def groups(
    conn: asyncpg.Connection,
    app_id: str,
    collection: str,
    index: str | None,
    ranges: list[tuple[bytes, bytes]],
    group_by: str,
    total: str | None,
) -> list[asyncpg.Record]:
    """Per value of field `group_by` among the matching documents: the value (jsonb, NULL when missing), the
    count, and the exact sum of field `total` where it is a number (NULL when there is none)."""
    if index is None:
        matching = "SELECT doc_id FROM miniapp_records WHERE app_id = $1 AND collection = $2"
    else:
        matching = (
            "SELECT k.doc_id FROM unnest($4::bytea[], $5::bytea[]) AS r(lo, hi) JOIN miniapp_record_keys k"
            " ON k.app_id = $1 AND k.collection = $2 AND k.index_name = $3 AND k.key >= r.lo AND k.key < r.hi"
        )
    args: list[Any] = [app_id, collection]
    if index is not None:
        args += [index, [lo for lo, _ in ranges], [hi for _, hi in ranges]]
    g, t = f"${len(args) + 1}", f"${len(args) + 2}"
    return await conn.fetch(
        f"SELECT d.body -> {g}::text AS value, count(*) AS n,"  # noqa: S608
        f" sum(CASE WHEN jsonb_typeof(d.body -> {t}::text) = 'number' THEN (d.body ->> {t}::text)::numeric END)"
        f" AS total FROM ({matching}) m JOIN miniapp_records d"
        " ON d.app_id = $1 AND d.collection = $2 AND d.doc_id = m.doc_id GROUP BY 1",
        *args,
        group_by,
        total or "",
    )


async def index_built(conn: asyncpg.Connection, app_id: str, collection: str, index: str) -> bool:
    found = await conn.fetchval(
        "SELECT true FROM miniapp_record_indexes WHERE app_id = $1 AND collection = $2 AND index_name = $3",
        app_id,
        collection,
        index,
    )
    return found is not None


async def built_indexes(conn: asyncpg.Connection, app_id: str, collection: str) -> list[str]:
    return [
        r["index_name"]
        for r in await conn.fetch(
            "SELECT index_name FROM miniapp_record_indexes WHERE app_id = $1 AND collection = $2",
            app_id,
            collection,
        )
    ]


async def unbuild_index(conn: asyncpg.Connection, app_id: str, collection: str, index: str) -> None:
    """Mark an index no longer complete (a document it cannot hold was written): its next query rebuilds it."""
    await conn.execute(
        "DELETE FROM miniapp_record_indexes WHERE app_id = $1 AND collection = $2 AND index_name = $3",
        app_id,
        collection,
        index,
    )


async def lock_index(conn: asyncpg.Connection, app_id: str, collection: str, index: str) -> None:
    """Serialise builds of one index (transaction-scoped)."""
    await conn.execute(
        "SELECT pg_advisory_xact_lock(hashtextextended($1 || ' ' || $2 || ' ' || $3, 15))",
        app_id,
        collection,
        index,
    )


async def bodies(conn: asyncpg.Connection, app_id: str, collection: str) -> list[asyncpg.Record]:
    return await conn.fetch(
        "SELECT doc_id, body FROM miniapp_records WHERE app_id = $1 AND collection = $2", app_id, collection
    )


async def put_index(
    conn: asyncpg.Connection,
    app_id: str,
    collection: str,
    index: str,
    keys: list[tuple[bytes, str]],
    at: dt.datetime,
) -> None:
    """Add an index's keys of existing documents, and mark the index built."""
    await conn.execute(
        "INSERT INTO miniapp_record_keys (app_id, collection, index_name, key, doc_id)"
        " SELECT $1, $2, $3, k, d FROM unnest($4::bytea[], $5::text[]) AS t(k, d) ON CONFLICT DO NOTHING",
        app_id,
        collection,
        index,
        [k for k, _ in keys],
        [d for _, d in keys],
    )
    await conn.execute(
        "INSERT INTO miniapp_record_indexes (app_id, collection, index_name, built_at) VALUES ($1, $2, $3, $4)"
        " ON CONFLICT DO NOTHING",
        app_id,
        collection,
        index,
        at,
    )
