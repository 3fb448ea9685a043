"""All SQL of mini-app jobs: one-shot jobs apps schedule, the rows of declared schedules, and the claims, leases
and outcomes of the runners on every node.

Every statement is keyed by the app id the sandbox host vouches for (or the runner read from the released
view), never by anything the app sends.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import asyncpg
import msgspec


class ClaimedJob(msgspec.Struct, frozen=True, kw_only=True):
    """A job a runner holds under its lease: the run it is for and how many runs it has had (this one included)."""

    id: int
    app_id: str
    name: str
    schedule: str | None
    data: dict[str, Any]
    due_at: dt.datetime
    attempt: int

    @property
    def job_id(self) -> str:
        """What the handler sees: `job_12`, or for a schedule's firing `job_3.<Unix time of the firing>`."""
        if self.schedule is None:
            return f"job_{self.id}"
        return f"job_{self.id}.{int(self.due_at.timestamp())}"


async def lock_app(conn: asyncpg.Connection, app_id: str) -> None:
    """Serialise one app's schedule calls for this transaction (the pending-jobs quota is a count)."""
    await conn.execute("SELECT pg_advisory_xact_lock(hashtextextended('miniapp_jobs:' || $1, 0))", app_id)


async def by_key(conn: asyncpg.Connection, app_id: str, key: str) -> int | None:
    found: int | None = await conn.fetchval(
        "SELECT id FROM miniapp_jobs WHERE app_id = $1 AND idempotency_key = $2", app_id, key
    )
    return found


async def pending_once(conn: asyncpg.Connection, app_id: str) -> int:
    count: int = await conn.fetchval(
        "SELECT count(*) FROM miniapp_jobs WHERE app_id = $1 AND status = 'pending' AND schedule IS NULL",
        app_id,
    )
    return count


async def insert_once(
    conn: asyncpg.Connection,
    app_id: str,
    name: str,
    data: bytes,
    key: str | None,
    at: dt.datetime,
    now: dt.datetime,
) -> int:
    job_id: int = await conn.fetchval(
        "INSERT INTO miniapp_jobs (app_id, name, data, idempotency_key, due_at, run_at, created_at)"
        " VALUES ($1, $2, $3::text::jsonb, $4, $5, $5, $6) RETURNING id",
        app_id,
        name,
        data.decode(),
        key,
        at,
        now,
    )
    return job_id


async def cancel(conn: asyncpg.Connection, app_id: str, job_id: int, now: dt.datetime) -> bool:
    """Cancel a one-shot job that is pending and not being run right now."""
    done = await conn.fetchval(
        "UPDATE miniapp_jobs SET status = 'cancelled', finished_at = $3"
        " WHERE id = $2 AND app_id = $1 AND schedule IS NULL AND status = 'pending'"
        " AND (lease_until IS NULL OR lease_until <= $3) RETURNING id",
        app_id,
        job_id,
        now,
    )
    return done is not None


class Schedule(msgspec.Struct, frozen=True, kw_only=True):
    """A declared schedule of a released manifest, with its next firing."""

    app_id: str
    name: str
    expression: str
    first: dt.datetime


async def sync_schedules(
    conn: asyncpg.Connection, app_ids: list[str], schedules: list[Schedule], now: dt.datetime
) -> None:
    """Make the schedule rows of these apps exactly `schedules`. A schedule whose expression is unchanged keeps
    its row (and its next firing); a changed one starts afresh; one no longer declared goes."""
    await conn.executemany(
        "INSERT INTO miniapp_jobs (app_id, name, schedule, due_at, run_at, created_at)"
        " VALUES ($1, $2, $3, $4, $4, $5)"
        " ON CONFLICT (app_id, name) WHERE schedule IS NOT NULL DO UPDATE"
        " SET schedule = EXCLUDED.schedule, due_at = EXCLUDED.due_at, run_at = EXCLUDED.run_at,"
        " attempt = 0, lease_until = NULL, last_error = NULL"
        " WHERE miniapp_jobs.schedule <> EXCLUDED.schedule",
        [(s.app_id, s.name, s.expression, s.first, now) for s in schedules],
    )
    await conn.execute(
        "DELETE FROM miniapp_jobs WHERE schedule IS NOT NULL AND app_id = ANY($1::text[])"
        " AND NOT (app_id || '/' || name = ANY($2::text[]))",
        app_ids,
        [f"{s.app_id}/{s.name}" for s in schedules],  # neither an app id nor a name holds "/",
    )


async def make_due(conn: asyncpg.Connection, app_id: str, name: str, now: dt.datetime) -> int | None:
    """Make the schedule `name` of `app_id` fire now (`yima jobs run`): its row's due time is now, so the run sees
    `scheduled_at` = now and its next firing follows from there. None when there is no such schedule row (not
    released, not synced yet) or a run of it holds a live lease (that run finishes first)."""
    return await conn.fetchval(  # type: ignore[no-any-return]
        "UPDATE miniapp_jobs SET due_at = $3, run_at = $3, attempt = 0, last_error = NULL"
        " WHERE app_id = $1 AND name = $2 AND schedule IS NOT NULL AND status = 'pending'"
        " AND (lease_until IS NULL OR lease_until <= $3) RETURNING id",
        app_id,
        name,
        now,
    )


async def claim(
    conn: asyncpg.Connection, app_ids: list[str], now: dt.datetime, lease_until: dt.datetime, limit: int
) -> list[ClaimedJob]:
    """Take up to `limit` due jobs of these apps under a lease, counting the run. Rows another runner is
    claiming are skipped, not waited for; a row whose lease expired (its runner died) is due again."""
    rows = await conn.fetch(
        "UPDATE miniapp_jobs j SET lease_until = $3, attempt = j.attempt + 1"
        " FROM (SELECT id FROM miniapp_jobs"
        "       WHERE status = 'pending' AND run_at <= $2 AND app_id = ANY($1::text[])"
        "       AND (lease_until IS NULL OR lease_until <= $2)"
        "       ORDER BY run_at LIMIT $4 FOR UPDATE SKIP LOCKED) due"
        " WHERE j.id = due.id"
        " RETURNING j.id, j.app_id, j.name, j.schedule, j.data::text AS data, j.due_at, j.attempt",
        app_ids,
        now,
        lease_until,
        limit,
    )
    return [
        ClaimedJob(
            id=row["id"],
            app_id=row["app_id"],
            name=row["name"],
            schedule=row["schedule"],
            data=msgspec.json.decode(row["data"]),
            due_at=row["due_at"],
            attempt=row["attempt"],
        )
        for row in rows
    ]


async def finish(
    conn: asyncpg.Connection,
    job: ClaimedJob,
    now: dt.datetime,
    *,
    status: str = "pending",
    error: str | None = None,
    run_at: dt.datetime | None = None,
    next_due: dt.datetime | None = None,
) -> bool:
    """Record the outcome of the run `job` was claimed for, only if no other runner claimed it since (its lease
    expired meanwhile): `status` done / failed for a one-shot job; `run_at` to run the same firing again after
    a failure; `next_due` to move a schedule on to its next firing. False when the claim was lost."""
    # each statement changes the row only while the claim is ours: nobody claimed this firing again since
    if next_due is not None:
        sql = (
            "UPDATE miniapp_jobs SET due_at = $5, run_at = $5, attempt = 0, lease_until = NULL, last_error = $4"
            " WHERE id = $1 AND attempt = $2 AND due_at = $3 AND status = 'pending' RETURNING id"
        )
        value: Any = next_due
    elif run_at is not None:
        sql = (
            "UPDATE miniapp_jobs SET run_at = $5, lease_until = NULL, last_error = $4"
            " WHERE id = $1 AND attempt = $2 AND due_at = $3 AND status = 'pending' RETURNING id"
        )
        value = run_at
    else:
        sql = (
            "UPDATE miniapp_jobs SET status = $5, finished_at = $6, lease_until = NULL, last_error = $4"
            " WHERE id = $1 AND attempt = $2 AND due_at = $3 AND status = 'pending' RETURNING id"
        )
        return await conn.fetchval(sql, job.id, job.attempt, job.due_at, error, status, now) is not None
    return await conn.fetchval(sql, job.id, job.attempt, job.due_at, error, value) is not None


async def prune(conn: asyncpg.Connection, before: dt.datetime, limit: int) -> int:
    """Delete up to `limit` one-shot jobs that finished (done, failed, cancelled) before `before`."""
    deleted: int = await conn.fetchval(
        "WITH gone AS (DELETE FROM miniapp_jobs WHERE id IN ("
        "  SELECT id FROM miniapp_jobs WHERE status <> 'pending' AND finished_at < $1 LIMIT $2)"
        " RETURNING 1) SELECT count(*) FROM gone",
        before,
        limit,
    )
    return deleted
