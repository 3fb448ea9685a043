"""The simulated `jobs` capability: one-shot jobs and the manifest's schedules, kept as production keeps them and
run by `AsyncSimulator.advance` when they fall due (a failure again after its backoff, a schedule at each firing)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import msgspec

from yima_sdk import contract as c
from yima_sdk.cron import parse_cron
from yima_sdk.errors import QuotaExceeded

if TYPE_CHECKING:
    from yima_sdk.simulator._platform import SimulatedPlatform

__all__ = ["SimJob", "SimulatedJobs"]


@dataclass
class SimJob:
    """A one-shot job (`ctx.jobs.schedule`) or a declared schedule (`[jobs]`, `schedule` set), as production
    keeps it: due at `due`, tried next at `run_at` (later after a failure), `attempt` runs so far."""

    id: str
    name: str
    due: float
    run_at: float
    data: dict[str, Any] = field(default_factory=dict)
    schedule: str | None = None
    attempt: int = 0
    status: Literal["pending", "done", "failed", "cancelled"] = "pending"

    @property
    def job_id(self) -> str:
        """What the handler sees: the job's id, and for a schedule the Unix time of this firing."""
        return self.id if self.schedule is None else f"{self.id}.{int(self.due)}"


class SimulatedJobs:
    """`jobs.*` operations of one simulated app (its jobs are `platform.jobs`); the manifest's schedules are
    entered when it is made."""

    def __init__(self, platform: SimulatedPlatform) -> None:
        self.platform = platform
        self._job_keys: dict[str, str] = {}
        now = dt.datetime.fromtimestamp(platform.clock(), dt.UTC)
        for name, expression in platform.manifest.jobs.items():
            due = parse_cron(expression).next_after(now).timestamp()
            job = SimJob(id=f"job_{platform.next_id()}", name=name, due=due, run_at=due, schedule=expression)
            platform.jobs[job.id] = job

    def schedule(self, op: c.JobsSchedule) -> str:
        due, encoded = c.check_job(op, self.platform.clock())
        if op.key is not None and op.key in self._job_keys:
            return self._job_keys[op.key]
        pending = sum(1 for j in self.platform.jobs.values() if j.schedule is None and j.status == "pending")
        if pending >= self.platform.jobs_quota:
            raise QuotaExceeded(f"at most {self.platform.jobs_quota} one-shot jobs may be pending per app")
        job = SimJob(
            id=f"job_{self.platform.next_id()}",
            name=op.name,
            due=due,
            run_at=due,
            data=msgspec.json.decode(encoded),  # stored as JSON, as production
        )
        self.platform.jobs[job.id] = job
        if op.key is not None:
            self._job_keys[op.key] = job.id
        return job.id

    def next_job(self, until: float) -> SimJob | None:
        """The pending job to run first among those due by `until`, if any."""
        due = [j for j in self.platform.jobs.values() if j.status == "pending" and j.run_at <= until]
        return min(due, key=lambda j: (j.run_at, j.id), default=None)

    def job_ran(self, job: SimJob, ok: bool) -> float | None:
        """Record a run of `job` (its attempt already counted): done, or due again after a pause (its
        delay is returned), or given up after the last attempt. A schedule moves on to its next firing."""
        now = self.platform.clock()
        if not ok and job.attempt < c.JOB_ATTEMPTS:
            delay = c.job_retry_delay(job.attempt)
            job.run_at = now + delay
            return delay
        if job.schedule is None:
            job.status = "done" if ok else "failed"
            return None
        after = dt.datetime.fromtimestamp(max(job.due, now), dt.UTC)
        job.due = job.run_at = parse_cron(job.schedule).next_after(after).timestamp()
        job.attempt = 0
        return None

    def cancel(self, op: c.JobsCancel) -> bool:
        job = self.platform.jobs.get(op.job_id)
        if job is None or job.schedule is not None or job.status != "pending":
            return False
        job.status = "cancelled"
        return True
