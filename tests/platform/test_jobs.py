"""Jobs on the platform, through the real sandbox and PostgreSQL: a one-shot job runs once when due, a failing
job runs again after its backoff and shows in the app's log, a schedule fires in county time, a run whose
process died is taken over when its lease expires, and a suspended app's jobs wait. The runner's clock is
injected and its rounds are driven by the test (its own loop polls once an hour here)."""

from __future__ import annotations

import dataclasses
import datetime as dt
import os
import subprocess
import time
from pathlib import Path

import asyncpg
import pytest
from litestar import Litestar
from yima_sdk.cron import COUNTY_TIME, parse_cron

from sandbox import SandboxSettings
from server.app import create_app
from server.platform.config import PlatformSettings
from server.platform.jobs import repository as repo
from server.platform.plugin import PlatformPlugin
from server.settings import Settings
from tests.conftest import login
from tests.e2e._real import YIMA
from tests.platform.conftest import Team, call, new_app_id
from tests.platform.jobs_app import write_jobs_app


@pytest.fixture
def app(settings: Settings, apps_dir: Path) -> Litestar:
    application = create_app(settings)
    application.plugins.get(PlatformPlugin).config = PlatformSettings(
        sandbox=SandboxSettings(max_workers=1, queue_limit=256),
        apps_dir=apps_dir,
        jobs_poll_s=3600,  # the test drives the rounds
    )
    return application


async def test_jobs_run_when_due_retry_with_backoff_and_wait_while_suspended(
    team: Team, tmp_path: Path
) -> None:
    app_id, version = await team.ship(write_jobs_app(tmp_path, new_app_id("jobs")))
    platform = team.client.app.state.platform
    runner = platform.jobs
    now = [time.time()]
    runner.clock = lambda: now[0]

    async def tick() -> list[str]:
        """One round of the runner; the ids of this app's jobs it ran (the database holds other tests' apps)."""
        return [job.job_id for job in await runner.tick() if job.app_id == app_id]

    resident = await login(team.client)
    logs = lambda: platform.runtime.host.logs(f"{app_id}@{version}")  # noqa: E731

    async def get(path: str) -> object:
        r = await call(team.client, resident, app_id, "GET", path)
        assert r.status_code == 200, r.text
        return r.json()

    # a hold, released by a one-shot job 15 minutes later, once
    r = await call(team.client, resident, app_id, "POST", "/hold/a")
    assert r.status_code == 200, r.text
    job = r.json()["job"]
    assert await tick() == [] and await get("/counter/held:a") == 1
    now[0] += 15 * 60 + 1
    assert await tick() == [job]
    assert await get("/counter/held:a") == 0 and await get("/docs/ran:") == {f"ran:{job}": 1}
    assert await tick() == []
    assert any(rec["event"] == "job done" and rec["job_id"] == job for rec in logs())

    # a job failing its first run: logged, not due again until its backoff has passed, then it succeeds
    r = await call(team.client, resident, app_id, "POST", "/flaky/1")
    flaky = r.json()["job"]
    assert await tick() == [flaky]
    failed = [rec for rec in logs() if rec["event"] == "job failed"]
    assert [(f["job_id"], f["attempt"], f["code"], f["retry_in_s"]) for f in failed] == [
        (flaky, 1, "miniapp.error", 30.0)
    ]
    assert "attempt 1 fails" in failed[0]["reason"]
    now[0] += 29
    assert await tick() == []
    now[0] += 2
    assert await tick() == [flaky] and await get("/docs/flaky:") == {f"flaky:{flaky}": 2}

    # the schedule fires at 18:00 county time, with the firing's time in its id
    firing = parse_cron("0 18 * * *").next_after(dt.datetime.fromtimestamp(now[0], dt.UTC))
    now[0] = firing.timestamp() + 1
    [tally] = await tick()
    assert tally.endswith(f".{int(firing.timestamp())}")
    assert await get("/docs/tally:") == {f"tally:{tally}": 1}
    assert firing.astimezone(COUNTY_TIME).hour == 18

    # a runner that claimed a job and died: the job waits for the lease, then another round takes it over
    r = await call(team.client, resident, app_id, "POST", "/flaky/0")
    orphan = r.json()["job"]
    async with platform.core.db.transaction() as conn:
        taken = await repo.claim(conn, [app_id], _utc(now[0]), _utc(now[0] + runner.lease_s), limit=10)
    assert [t.job_id for t in taken] == [orphan]
    now[0] += runner.lease_s - 1
    assert await tick() == []
    now[0] += 2
    assert await tick() == [orphan]
    assert (await get("/docs/flaky:"))[f"flaky:{orphan}"] == 2  # type: ignore[index]  # its second run

    # a suspended app's jobs do not run; they run once it is resumed
    r = await call(team.client, resident, app_id, "POST", "/flaky/0")
    waiting = r.json()["job"]
    r = await team.admin("POST", f"/{app_id}/suspend", json={"reason": "checking the jobs"})
    assert r.status_code == 200, r.text
    assert await tick() == []
    r = await team.admin("POST", f"/{app_id}/resume")
    assert r.status_code == 200, r.text
    assert await tick() == [waiting]
    assert f"flaky:{waiting}" in await get("/docs/flaky:")  # type: ignore[operator]

    # a release that changes a schedule starts it afresh; one that drops it removes it
    async def schedules() -> list[tuple[str, str, dt.datetime]]:
        async with platform.core.db.connection() as conn:
            rows = await conn.fetch(
                "SELECT name, schedule, run_at FROM miniapp_jobs WHERE app_id = $1 AND schedule IS NOT NULL",
                app_id,
            )
        return [(row["name"], row["schedule"], row["run_at"]) for row in rows]

    released = runner.runnable()[app_id]
    morning = dataclasses.replace(
        released, version="1.0.1", manifest={**released.manifest, "jobs": {"tally": "30 7 * * *"}}
    )
    await runner.sync({app_id: morning})
    [(name, schedule, run_at)] = await schedules()
    assert (name, schedule) == ("tally", "30 7 * * *")
    assert run_at == parse_cron("30 7 * * *").next_after(_utc(now[0]))
    await runner.sync(
        {app_id: dataclasses.replace(released, version="1.0.2", manifest={**released.manifest, "jobs": {}})}
    )
    assert await schedules() == []


def _utc(seconds: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(seconds, dt.UTC)


async def test_yima_jobs_run_fires_a_schedule_now_and_puts_who_asked_on_record(
    team: Team, tmp_path: Path, settings: Settings
) -> None:
    app_id, _ = await team.ship(write_jobs_app(tmp_path, new_app_id("jobs")))
    platform = team.client.app.state.platform
    runner = platform.jobs
    runner.clock = time.time
    db = platform.core.db
    assert [job for job in await runner.tick() if job.app_id == app_id] == []  # its schedule synced, not due

    async def requests() -> list[asyncpg.Record]:
        async with db.connection() as conn:
            return await conn.fetch(
                "SELECT actor, target, details, at FROM audit_log WHERE action = 'job.run_requested'"
                " AND target = $1 ORDER BY seq",
                f"miniapp:{app_id}",
            )

    # a name the release does not declare: nothing made due, nothing on record
    refused = _yima(settings, "jobs", "run", app_id, "no-such-job")
    assert refused.returncode == 1 and "no schedule 'no-such-job'" in refused.stderr, refused.stderr
    assert await requests() == []

    before = dt.datetime.now(dt.UTC)
    done = _yima(settings, "jobs", "run", app_id, "tally")
    assert done.returncode == 0, done.stderr
    [record] = await requests()
    job_id = done.stdout.split("(")[1].split(")")[0]  # "APP: tally (job_N) is due now; ..."
    assert (record["actor"], record["details"]) == ("cli", {"job": "tally", "job_id": job_id})
    assert before - dt.timedelta(seconds=5) <= record["at"] <= dt.datetime.now(dt.UTC)
    verified = _yima(settings, "audit", "verify")
    assert verified.returncode == 0, verified.stdout + verified.stderr

    # and the job is due now: the runner's next round fires it, whatever the hour
    [tally] = [job.job_id for job in await runner.tick() if job.app_id == app_id]
    resident = await login(team.client)
    r = await call(team.client, resident, app_id, "GET", "/docs/tally:")
    assert r.status_code == 200 and r.json() == {f"tally:{tally}": 1}, r.text


def _yima(settings: Settings, *argv: str) -> subprocess.CompletedProcess[str]:
    """`yima ARGV` as an operator runs it on the server's machine: its settings from YIMA_* variables."""
    environ = {k: v for k, v in os.environ.items() if not k.startswith("YIMA_")}
    environ.update(
        YIMA_MODE="test",
        YIMA_DATABASE_URL=settings.database_url,
        YIMA_MASTER_KEY=settings.master_key,
        YIMA_DATA_DIR=str(settings.data_dir),
    )
    return subprocess.run(
        [YIMA, *argv], env=environ, capture_output=True, text=True, timeout=120, check=False
    )
