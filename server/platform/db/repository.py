"""All SQL of `ctx.db` documents: reads and writes of one document, storage counters, the one-statement commit
and the app's usage shards. The SQL of indexes (their builds and the reads through them) is index_repository.py.

Every statement is keyed by the app id the sandbox host vouches for, never by anything the app sends.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import asyncpg


async def lock(
    conn: asyncpg.Connection, app_id: str, at: list[tuple[str, str]]
) -> dict[tuple[str, str], asyncpg.Record]:
    """Lock the existing documents among `at`, in (collection, id) order so concurrent commits never deadlock on
    them; their versions and sizes."""
    rows = await conn.fetch(
        "SELECT collection, doc_id, version, size_bytes FROM miniapp_records"
        " WHERE app_id = $1 AND (collection, doc_id) IN (SELECT * FROM unnest($2::text[], $3::text[]))"
        " ORDER BY collection, doc_id FOR UPDATE",
        app_id,
        [c for c, _ in at],
        [d for _, d in at],
    )
    return {(r["collection"], r["doc_id"]): r for r in rows}


async def get(conn: asyncpg.Connection, app_id: str, collection: str, doc_id: str) -> asyncpg.Record | None:
    return await conn.fetchrow(
        "SELECT body, version FROM miniapp_records WHERE app_id = $1 AND collection = $2 AND doc_id = $3",
        app_id,
        collection,
        doc_id,
    )


async def insert(
    conn: asyncpg.Connection,
    app_id: str,
    collection: str,
    doc_id: str,
    body: Any,
    size: int,
    keys: dict[str, bytes],
    at: dt.datetime,
) -> bool:
    """Insert a document at version 1 with its index keys, in one statement; False when the id exists."""
    done = await conn.fetchval(
        "WITH d AS (INSERT INTO miniapp_records (app_id, collection, doc_id, body, version, size_bytes, updated_at)"
        "  VALUES ($1, $2, $3, $4, 1, $5, $6) ON CONFLICT DO NOTHING RETURNING doc_id),"
        " k AS (INSERT INTO miniapp_record_keys (app_id, collection, index_name, key, doc_id)"
        "  SELECT $1, $2, n, k, d.doc_id FROM d CROSS JOIN unnest($7::text[], $8::bytea[]) AS t(n, k))"
        " SELECT count(*) FROM d",
        app_id,
        collection,
        doc_id,
        body,
        size,
        at,
        list(keys),
        list(keys.values()),
    )
    return bool(done)


async def replace(
    conn: asyncpg.Connection,
    app_id: str,
    collection: str,
    doc_id: str,
    body: Any,
    size: int,
    keys: dict[str, bytes],
    version: int,
    at: dt.datetime,
) -> None:
    """Write a locked document's new body and version and its index keys, in one statement: keys that changed are
    replaced, the others stay (so an update that moves no indexed field writes no index page)."""
    await conn.execute(
        "WITH u AS (UPDATE miniapp_records SET body = $4, size_bytes = $5, version = $6, updated_at = $7"
        "  WHERE app_id = $1 AND collection = $2 AND doc_id = $3),"
        " gone AS (DELETE FROM miniapp_record_keys WHERE app_id = $1 AND collection = $2 AND doc_id = $3"
        "  AND (index_name, key) NOT IN (SELECT * FROM unnest($8::text[], $9::bytea[])))"
        " INSERT INTO miniapp_record_keys (app_id, collection, index_name, key, doc_id)"
        " SELECT $1, $2, n, k, $3 FROM unnest($8::text[], $9::bytea[]) AS t(n, k) ON CONFLICT DO NOTHING",
        app_id,
        collection,
        doc_id,
        body,
        size,
        version,
        at,
        list(keys),
        list(keys.values()),
    )


async def delete(conn: asyncpg.Connection, app_id: str, collection: str, doc_id: str) -> None:
    await conn.execute(
        "WITH d AS (DELETE FROM miniapp_records WHERE app_id = $1 AND collection = $2 AND doc_id = $3)"
        " DELETE FROM miniapp_record_keys WHERE app_id = $1 AND collection = $2 AND doc_id = $3",
        app_id,
        collection,
        doc_id,
    )


async def counter_add(
    conn: asyncpg.Connection,
    app_id: str,
    collection: str,
    name: str,
    delta: int,
    lower: int | None,
    upper: int | None,
    at: dt.datetime,
) -> tuple[int, bool] | None:
    """Add to a storage counter (created at 0 if new) in one statement: (new value, created), or None when the
    result would leave [lower, upper] (a new counter's first value is checked by the caller, whose transaction
    then rolls back)."""
    row = await conn.fetchrow(
        "INSERT INTO miniapp_counters AS c (app_id, collection, key, value, updated_at) VALUES ($1, $2, $3, $4, $7)"
        " ON CONFLICT (app_id, collection, key) DO UPDATE SET value = c.value + $4, updated_at = $7"
        " WHERE ($5::bigint IS NULL OR c.value + $4 >= $5) AND ($6::bigint IS NULL OR c.value + $4 <= $6)"
        " RETURNING value, xmax = 0 AS created",
        app_id,
        collection,
        name,
        delta,
        lower,
        upper,
        at,
    )
    return None if row is None else (row["value"], row["created"])


_COMMIT_SIMPLE = """
WITH t AS (SELECT * FROM unnest($3::text[], $4::bigint[], $5::bigint[], $6::bigint[]) AS t(n, delta, lo, hi)),
c AS (
  INSERT INTO miniapp_counters AS c (app_id, collection, key, value, updated_at)
  SELECT $1, $2, n, delta, $7 FROM t ORDER BY n
  ON CONFLICT (app_id, collection, key) DO UPDATE SET value = c.value + excluded.value, updated_at = excluded.updated_at
  RETURNING key, value, xmax = 0 AS created),
d AS (
  INSERT INTO miniapp_records (app_id, collection, doc_id, body, version, size_bytes, updated_at)
  SELECT $1, dc, di, db::jsonb, 1, ds, $7 FROM unnest($8::text[], $9::text[], $10::text[], $11::int[]) AS x(dc, di, db, ds)
  ON CONFLICT DO NOTHING RETURNING collection, doc_id, size_bytes),
k AS (
  INSERT INTO miniapp_record_keys (app_id, collection, index_name, key, doc_id)
  SELECT $1, kc, kn, kk, kd FROM unnest($12::text[], $13::text[], $14::text[], $15::bytea[]) AS y(kc, kd, kn, kk)
  JOIN d ON d.collection = kc AND d.doc_id = kd),
a AS (
  SELECT array_agg(c.key) AS names, array_agg(c.value) AS counted, count(*) FILTER (WHERE c.created) AS created,
         min(c.key) FILTER (WHERE c.value < t.lo OR c.value > t.hi) AS out_of_range
  FROM c JOIN t ON t.n = c.key),
g AS (SELECT count(*) AS docs, count(*) + (SELECT created FROM a) AS keys, coalesce(sum(size_bytes), 0) AS bytes FROM d),
u AS (
  INSERT INTO miniapp_usage_shards AS s (app_id, shard, keys, bytes)
  SELECT $1, $16, g.keys, g.bytes FROM g, miniapps m WHERE m.app_id = $1 AND (g.keys > 0 OR g.bytes > 0)
  AND (SELECT m.storage_keys + used.keys + g.keys <= m.storage_max_keys
       AND m.storage_bytes + used.bytes + g.bytes <= m.storage_max_bytes FROM miniapp_db_usage($1) used)
  ON CONFLICT (app_id, shard) DO UPDATE SET keys = s.keys + excluded.keys, bytes = s.bytes + excluded.bytes
  RETURNING true)
SELECT CASE
  WHEN a.out_of_range IS NOT NULL THEN yima_db_refuse('counter', a.out_of_range)
  WHEN g.docs < cardinality($9::text[])
    THEN yima_db_refuse('exists', (SELECT min(x.dc || '/' || x.di) FROM unnest($8::text[], $9::text[]) AS x(dc, di)
                                   WHERE NOT EXISTS (SELECT 1 FROM d WHERE d.collection = x.dc AND d.doc_id = x.di)))
  WHEN (g.keys > 0 OR g.bytes > 0) AND NOT EXISTS (SELECT 1 FROM u) THEN yima_db_refuse('quota', '')
  ELSE 0 END AS refused, a.names, a.counted
FROM a, g
"""


async def commit_simple(
    conn: asyncpg.Connection,
    app_id: str,
    counters_collection: str,
    counters: list[tuple[str, int, int | None, int | None]],
    documents: list[tuple[str, str, str, int, dict[str, bytes]]],
    shard: int,
    at: dt.datetime,
) -> dict[str, int]:
    """A commit of counter additions (distinct names) and new documents (JSON text, size, index keys) in ONE
    statement outside an explicit transaction: one round trip, atomic. A counter left outside its
    [lower, upper], an id that exists or the quota raises `yima.db:counter|exists|quota` (asyncpg.RaiseError,
    its detail the subject), and nothing is written. Returns each counter's new value by name."""
    keys = [
        (collection, doc_id, name, key)
        for collection, doc_id, _, _, ks in documents
        for name, key in ks.items()
    ]
    row = await conn.fetchrow(
        _COMMIT_SIMPLE,
        app_id,
        counters_collection,
        [n for n, _, _, _ in counters],
        [d for _, d, _, _ in counters],
        [lo for _, _, lo, _ in counters],
        [hi for _, _, _, hi in counters],
        at,
        [d[0] for d in documents],
        [d[1] for d in documents],
        [d[2] for d in documents],
        [d[3] for d in documents],
        [k[0] for k in keys],
        [k[1] for k in keys],
        [k[2] for k in keys],
        [k[3] for k in keys],
        shard,
    )
    assert row is not None
    return dict(zip(row["names"] or [], row["counted"] or [], strict=True))


SHARDS = 16
"""Usage rows per app (miniapp_usage_shards, migration 0101)."""


async def count_usage(conn: asyncpg.Connection, app_id: str, shard: int, keys: int, size: int) -> bool:
    """Add to the app's usage in one of its shards unless its total would pass its quota (shrinking always
    succeeds). The total is read without locks: commits at the same moment may pass the quota together."""
    done = await conn.fetchval(
        "INSERT INTO miniapp_usage_shards AS s (app_id, shard, keys, bytes)"
        " SELECT $1, $2, $3::bigint, $4::bigint FROM miniapps m WHERE m.app_id = $1"
        " AND (($3::bigint <= 0 AND $4::bigint <= 0) OR ("
        "  SELECT m.storage_keys + used.keys + $3::bigint <= m.storage_max_keys"
        "   AND m.storage_bytes + used.bytes + $4::bigint <= m.storage_max_bytes FROM miniapp_db_usage($1) used))"
        " ON CONFLICT (app_id, shard) DO UPDATE SET keys = s.keys + $3::bigint, bytes = s.bytes + $4::bigint"
        " RETURNING true",
        app_id,
        shard,
        keys,
        size,
    )
    return done is not None
