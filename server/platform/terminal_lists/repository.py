"""All SQL of terminal lists (`ctx.terminals.hold` / `drop`): their units' change numbers, salts and entries.

Every statement is keyed by the app id the sandbox host vouches for, or the app bound to a terminal's scene."""

from __future__ import annotations

import datetime as dt

import asyncpg

_ENTRY = "dropped, value, valid_from, expires_at, pass_number, account_id, generation, first_bucket, tags"


async def next_change(conn: asyncpg.Connection, app_id: str, unit: str) -> int:
    """The unit's next change number; the row stays locked until the transaction ends, so the unit's changes
    commit in the order of their numbers (and one hold at a time counts its list's entries)."""
    await conn.execute(
        "INSERT INTO terminal_list_units (app_id, unit, seq) VALUES ($1, $2, 0) ON CONFLICT DO NOTHING",
        app_id,
        unit,
    )
    seq: int = await conn.fetchval(
        "UPDATE terminal_list_units SET seq = seq + 1 WHERE app_id = $1 AND unit = $2 RETURNING seq",
        app_id,
        unit,
    )
    return seq


async def lock_unit(conn: asyncpg.Connection, app_id: str, unit: str) -> bool:
    """Take the unit's row as `next_change` does, without a number; False when the app never held an entry
    there."""
    found = await conn.fetchval(
        "SELECT 1 FROM terminal_list_units WHERE app_id = $1 AND unit = $2 FOR UPDATE", app_id, unit
    )
    return found is not None


async def salt(conn: asyncpg.Connection, app_id: str, list_name: str, unit: str, fresh: bytes) -> bytes:
    """The list's salt at the unit; `fresh` becomes it the first time."""
    await conn.execute(
        "INSERT INTO terminal_list_salts (app_id, list, unit, salt) VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
        app_id,
        list_name,
        unit,
        fresh,
    )
    held: bytes = await conn.fetchval(
        "SELECT salt FROM terminal_list_salts WHERE app_id = $1 AND list = $2 AND unit = $3",
        app_id,
        list_name,
        unit,
    )
    return bytes(held)


async def entry(
    conn: asyncpg.Connection, app_id: str, list_name: str, unit: str, key: str
) -> asyncpg.Record | None:
    return await conn.fetchrow(
        f"SELECT {_ENTRY} FROM terminal_list_entries"  # noqa: S608 - a constant column list
        " WHERE app_id = $1 AND list = $2 AND unit = $3 AND key = $4",
        app_id,
        list_name,
        unit,
        key,
    )


async def held_count(
    conn: asyncpg.Connection, app_id: str, list_name: str, unit: str, key: str, now: dt.datetime
) -> int:
    """The list's unexpired entries and tombstones at the unit but `key`'s: what its terminals sync."""
    found: int = await conn.fetchval(
        "SELECT count(*) FROM terminal_list_entries WHERE app_id = $1 AND list = $2 AND unit = $3"
        " AND key <> $4 AND expires_at > $5",
        app_id,
        list_name,
        unit,
        key,
        now,
    )
    return found


async def put(
    conn: asyncpg.Connection,
    app_id: str,
    list_name: str,
    unit: str,
    key: str,
    seq: int,
    *,
    dropped: bool,
    value: bytes,
    valid_from: dt.datetime,
    expires_at: dt.datetime,
    pass_number: int | None,
    account_id: int | None,
    generation: int | None,
    first_bucket: int | None,
    tags: bytes | None,
) -> None:
    await conn.execute(
        "INSERT INTO terminal_list_entries (app_id, list, unit, key, seq, dropped, value, valid_from, expires_at,"
        " pass_number, account_id, generation, first_bucket, tags)"
        " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)"
        " ON CONFLICT (app_id, list, unit, key) DO UPDATE SET seq = $5, dropped = $6, value = $7, valid_from = $8,"
        " expires_at = $9, pass_number = $10, account_id = $11, generation = $12, first_bucket = $13, tags = $14",
        app_id, list_name, unit, key, seq, dropped, value, valid_from, expires_at,
        pass_number, account_id, generation, first_bucket, tags,
    )  # fmt: skip


async def prune(conn: asyncpg.Connection, app_id: str, unit: str, before: dt.datetime) -> None:
    """Forget entries and tombstones that expired before `before`: every terminal expired them itself."""
    await conn.execute(
        "DELETE FROM terminal_list_entries WHERE app_id = $1 AND unit = $2 AND expires_at < $3",
        app_id,
        unit,
        before,
    )


async def prune_all(conn: asyncpg.Connection, now: dt.datetime, before: dt.datetime) -> tuple[int, int]:
    """Every unit's entries that expired by `now` forget their resident (account and tags); those expired before
    `before` go. How many of each."""
    unbound: str = await conn.execute(
        "UPDATE terminal_list_entries SET account_id = NULL, generation = NULL, first_bucket = NULL, tags = NULL"
        " WHERE expires_at <= $1 AND (account_id IS NOT NULL OR tags IS NOT NULL)",
        now,
    )
    gone: str = await conn.execute("DELETE FROM terminal_list_entries WHERE expires_at < $1", before)
    return int(unbound.split()[-1]), int(gone.split()[-1])


async def bound_app(conn: asyncpg.Connection, kind: str, scene: str) -> str | None:
    found: str | None = await conn.fetchval(
        "SELECT app_id FROM miniapp_scene_bindings WHERE kind = $1 AND scene = $2", kind, scene
    )
    return found


async def last_change(conn: asyncpg.Connection, app_id: str, unit: str) -> int:
    found: int | None = await conn.fetchval(
        "SELECT seq FROM terminal_list_units WHERE app_id = $1 AND unit = $2", app_id, unit
    )
    return found or 0


async def salts(conn: asyncpg.Connection, app_id: str, unit: str) -> list[asyncpg.Record]:
    return list(
        await conn.fetch(
            "SELECT list, salt FROM terminal_list_salts WHERE app_id = $1 AND unit = $2 ORDER BY list",
            app_id,
            unit,
        )
    )


async def changes(
    conn: asyncpg.Connection, app_id: str, unit: str, after: int, upto: int, now: dt.datetime, limit: int
) -> list[asyncpg.Record]:
    """The unit's changes numbered after `after` up to `upto`, oldest first, `limit` at most; those expired
    by `now` left out (a terminal expires them itself)."""
    return list(
        await conn.fetch(
            f"SELECT list, key, seq, {_ENTRY} FROM terminal_list_entries"  # noqa: S608 - a constant column list
            " WHERE app_id = $1 AND unit = $2 AND seq > $3 AND seq <= $4 AND expires_at > $5"
            " ORDER BY seq LIMIT $6",
            app_id,
            unit,
            after,
            upto,
            now,
            limit,
        )
    )


async def bound_generations(
    conn: asyncpg.Connection, app_id: str, unit: str, now: dt.datetime
) -> list[asyncpg.Record]:
    """The unit's live entries bound to a resident, with the code generation their tags were made in."""
    return list(
        await conn.fetch(
            "SELECT list, key, account_id, generation, valid_from, expires_at FROM terminal_list_entries"
            " WHERE app_id = $1 AND unit = $2 AND account_id IS NOT NULL AND NOT dropped AND expires_at > $3",
            app_id,
            unit,
            now,
        )
    )


async def retag(
    conn: asyncpg.Connection,
    app_id: str,
    list_name: str,
    unit: str,
    key: str,
    seq: int,
    generation: int,
    first_bucket: int,
    tags: bytes,
    *,
    account_id: int,
    was_generation: int | None,
    window: tuple[dt.datetime, dt.datetime],
) -> bool:
    """Re-tag the entry only if it is still the live one of `account_id`, tagged in `was_generation` for
    `window` (valid from, expires at) as read: it was read before the unit's lock, and may since have been
    dropped or held again (for someone else); False if it was."""
    done: str = await conn.execute(
        "UPDATE terminal_list_entries SET seq = $5, generation = $6, first_bucket = $7, tags = $8"
        " WHERE app_id = $1 AND list = $2 AND unit = $3 AND key = $4"
        " AND account_id = $9 AND generation IS NOT DISTINCT FROM $10 AND NOT dropped"
        " AND valid_from = $11 AND expires_at = $12",
        app_id, list_name, unit, key, seq, generation, first_bucket, tags, account_id, was_generation, *window,
    )  # fmt: skip
    return done == "UPDATE 1"
