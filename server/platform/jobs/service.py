"""Mini-app jobs: the `jobs` capability (one-shot delayed jobs) and the runner every server process keeps.

    ctx.jobs.schedule(at, "release_slot", {"slot": 3}, key=...)  -> job id       (at most 30 days ahead)
    ctx.jobs.cancel("job_12")                                    -> was pending
    [jobs] remind = "0 18 * * *"                                  (miniapp.toml, county time)

Both kinds live in `miniapp_jobs` (jobs_repository.py). Each process's JobRunner keeps the rows of declared
schedules equal to the released manifests, claims due jobs of released, unsuspended apps with FOR UPDATE SKIP
LOCKED under a lease, and runs each in the app's sandbox like a call (same pool, deadline, CPU and memory
limits), with `JobEvent(name, job_id, data, attempt, scheduled_at)`. Jobs run at least once: a run that fails is
tried again after a growing pause, up to `JOB_ATTEMPTS` runs; a run whose process dies is claimed again when
its lease expires. Every failure is written to the app's log; a schedule moves on to its next firing after a
success or its last attempt. Which version runs a job: the stable one (the phased one while there is none).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import time
from collections.abc import Callable
from typing import Any

from yima_sdk import JobEvent
from yima_sdk import contract as c
from yima_sdk.cron import parse_cron
from yima_sdk.errors import QuotaExceeded

from sandbox.errors import SandboxError
from server.db import Database
from server.platform.jobs import repository as repo
from server.platform.jobs.repository import ClaimedJob
from server.platform.runtime.service import LiveVersion, Runtime

log = logging.getLogger("yima.platform.jobs")

KEEP_FINISHED_S = 30 * 86400
"""How long a finished one-shot job is kept (its key keeps answering the same job until then)."""
PRUNE_EVERY_S = 600.0


def _utc(seconds: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(seconds, dt.UTC)


class AppJobs:
    """The `jobs` capability: schedule and cancel one-shot jobs, within the per-app cap of pending ones."""

    def __init__(self, db: Database, max_pending: int = 1000) -> None:
        self.db = db
        self.max_pending = max_pending
        self.clock: Callable[[], float] = time.time

    async def handle(self, app_id: str, op: c.JobsSchedule | c.JobsCancel) -> Any:
        now = self.clock()
        if isinstance(op, c.JobsCancel):
            async with self.db.transaction() as conn:
                return await repo.cancel(conn, app_id, c.id_number(op.job_id), _utc(now))
        due, encoded = c.check_job(op, now)
        async with self.db.transaction() as conn:
            await repo.lock_app(conn, app_id)
            if op.key is not None and (found := await repo.by_key(conn, app_id, op.key)) is not None:
                return f"job_{found}"
            if await repo.pending_once(conn, app_id) >= self.max_pending:
                raise QuotaExceeded(f"at most {self.max_pending} one-shot jobs may be pending per app")
            job_id = await repo.insert_once(conn, app_id, op.name, encoded, op.key, _utc(due), _utc(now))
        return f"job_{job_id}"


class JobRunner:
    """Claims and runs due jobs on this process; several processes on one database share the work."""

    def __init__(
        self,
        db: Database,
        runtime: Runtime,
        *,
        poll_s: float = 1.0,
        lease_s: float = 300.0,
        batch: int = 8,
        retry_base_s: float = 30.0,
    ) -> None:
        self.db = db
        self.runtime = runtime
        self.poll_s = poll_s
        self.lease_s = lease_s
        """Longer than any run can take (the sandbox deadline is at most 60 s): a live run keeps its claim."""
        self.batch = batch
        self.retry_base_s = retry_base_s
        self.clock: Callable[[], float] = time.time
        self._synced: dict[str, tuple[str, tuple[tuple[str, str], ...]]] = {}
        self._task: asyncio.Task[None] | None = None
        self._pruned_at = 0.0

    def runnable(self) -> dict[str, LiveVersion]:
        """Apps whose jobs may run now, with the version that runs them: released and not suspended."""
        found: dict[str, LiveVersion] = {}
        for live in self.runtime.apps.values():
            version = live.stable or live.phased
            if not live.suspended and version is not None:
                found[live.app_id] = version
        return found

    async def sync(self, apps: dict[str, LiveVersion]) -> None:
        """Bring the schedule rows of apps whose released version changed in line with its `[jobs]` (one
        transaction for all of them; nothing when none changed, the usual case)."""
        after = _utc(self.clock())
        changed: dict[str, tuple[str, tuple[tuple[str, str], ...]]] = {}
        schedules: list[repo.Schedule] = []
        for app_id, version in apps.items():
            jobs: dict[str, str] = version.manifest.get("jobs") or {}
            signature = (version.version, tuple(sorted(jobs.items())))
            if self._synced.get(app_id) == signature:
                continue
            changed[app_id] = signature
            schedules += [
                repo.Schedule(
                    app_id=app_id, name=name, expression=expr, first=parse_cron(expr).next_after(after)
                )
                for name, expr in jobs.items()
            ]
        if not changed:
            return
        schedules.sort(key=lambda s: (s.app_id, s.name))  # every process locks rows in one order: no deadlock
        async with self.db.transaction() as conn:
            await repo.sync_schedules(conn, sorted(changed), schedules, after)
        self._synced.update(changed)

    async def prune(self) -> int:
        """Delete one-shot jobs that finished more than KEEP_FINISHED_S ago, a bounded batch at a time."""
        self._pruned_at = self.clock()
        async with self.db.transaction() as conn:
            return await repo.prune(conn, _utc(self._pruned_at - KEEP_FINISHED_S), limit=1000)

    async def tick(self) -> list[ClaimedJob]:
        """One round: sync schedules, claim due jobs, run them; the jobs it ran."""
        apps = self.runnable()
        if not apps:
            return []
        await self.sync(apps)
        if self.clock() - self._pruned_at >= PRUNE_EVERY_S:
            await self.prune()
        now = self.clock()
        async with self.db.transaction() as conn:
            claimed = await repo.claim(conn, list(apps), _utc(now), _utc(now + self.lease_s), self.batch)
        await asyncio.gather(*(self._run(job, apps[job.app_id]) for job in claimed))
        return claimed

    async def _run(self, job: ClaimedJob, version: LiveVersion) -> None:
        fields = {"job": job.name, "job_id": job.job_id, "attempt": job.attempt}
        if job.attempt > c.JOB_ATTEMPTS:  # its runs kept dying with their process
            await self._record(job, version, ok=False, error="job.lease_expired", fields=fields)
            return
        event = JobEvent(
            name=job.name, job_id=job.job_id, data=job.data, attempt=job.attempt, scheduled_at=job.due_at
        )
        started = time.perf_counter()
        try:
            key = await self.runtime.ensure_loaded(version)
            await self.runtime.host.job(key, event)
        except SandboxError as exc:
            fields["reason"] = exc.message[:500]
            await self._record(job, version, ok=False, error=exc.code, fields=fields)
            return
        except Exception as exc:  # the platform failed (the archive, the database): the job is not lost
            log.warning("job run failed", extra={"app": version.key, "error": repr(exc)})
            await self._record(job, version, ok=False, error="job.platform_failed", fields=fields)
            return
        fields["ms"] = round((time.perf_counter() - started) * 1000, 1)
        await self._record(job, version, ok=True, error=None, fields=fields)

    async def _record(
        self, job: ClaimedJob, version: LiveVersion, *, ok: bool, error: str | None, fields: dict[str, Any]
    ) -> None:
        now = self.clock()
        host = self.runtime.host
        outcome: dict[str, Any] = {}
        if not ok and job.attempt < c.JOB_ATTEMPTS:
            delay = c.job_retry_delay(job.attempt, self.retry_base_s)
            outcome["run_at"] = _utc(now + delay)
            host.app_log(version.key, "warning", "job failed", code=error, retry_in_s=delay, **fields)
        elif job.schedule is not None:
            after = _utc(max(now, job.due_at.timestamp()))
            outcome["next_due"] = parse_cron(job.schedule).next_after(after)
        else:
            outcome["status"] = "done" if ok else "failed"
        if ok:
            host.app_log(version.key, "info", "job done", **fields)
        elif "run_at" not in outcome:
            host.app_log(version.key, "error", "job gave up", code=error, **fields)
        async with self.db.transaction() as conn:
            kept = await repo.finish(conn, job, _utc(now), error=error, **outcome)
        if not kept:
            log.info("job claim lost to another runner", extra={"app": version.key, "job": job.job_id})

    # ---- the loop -------------------------------------------------------------------------------------

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name="platform-jobs")

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self.poll_s)
            try:
                while len(await self.tick()) >= self.batch:
                    pass  # a full batch: more may be due
            except asyncio.CancelledError:
                raise
            except Exception:
                log.warning("job round failed", exc_info=True)

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
