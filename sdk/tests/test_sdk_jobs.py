"""Jobs in the simulator: `advance` moves its clock and runs what falls due, in time order, as production would:
one-shot jobs at their time, schedules at each firing in county time, failures again after their backoff."""

from __future__ import annotations

import datetime as dt
import itertools
from collections.abc import Iterator
from pathlib import Path

import pytest
from yima_sdk.cron import COUNTY_TIME
from yima_sdk.simulator import Simulator

MANIFEST = """
id = "cn.example.jobs"
name = "Jobs"
version = "1.0.0"
capabilities = ["storage", "jobs", "log"]

[jobs]
tally = "0 18 * * *"
"""

SOURCE = """
import datetime as dt

from yima_sdk import App, VersionConflict

app = App()


@app.post("/hold/{slot}")
async def hold(ctx, request):
    slot = request.path_params["slot"]
    await ctx.storage.counter_add(f"held:{slot}", 1, max=1)
    job = await ctx.jobs.schedule(dt.timedelta(minutes=15), "release", {"slot": slot}, key=f"hold:{slot}")
    return {"job": job}


@app.post("/flaky/{fails}")
async def flaky(ctx, request):
    return {"job": await ctx.jobs.schedule(dt.timedelta(0), "flaky", {"fails": int(request.path_params["fails"])})}


@app.job("release")
async def release(ctx, job):
    try:
        await ctx.storage.put(f"ran:{job.job_id}", job.attempt, expected_version=0)
    except VersionConflict:
        return  # this job ran already: at least once, never twice in effect
    await ctx.storage.counter_add(f"held:{job.data['slot']}", -1)


@app.job("tally")
async def tally(ctx, job):
    await ctx.storage.counter_add("tallies", 1)


@app.job("flaky")
async def flaky_job(ctx, job):
    if job.attempt <= job.data["fails"]:
        raise RuntimeError(f"attempt {job.attempt} fails")
"""


@pytest.fixture
def sim(tmp_path: Path) -> Iterator[Simulator]:
    (tmp_path / "miniapp.toml").write_text(MANIFEST)
    (tmp_path / "app.py").write_text(SOURCE)
    tmp_path.chmod(0o755)  # as root the simulated app runs under its own uid and must read its folder
    with Simulator(tmp_path) as simulator:
        yield simulator


def test_advance_runs_one_shot_jobs_and_schedules_when_due(sim: Simulator) -> None:
    job = sim.post("/hold/a").json()["job"]
    assert sim.post("/hold/a").status == 409  # one hold per slot (storage.counter_out_of_range)
    assert sim.counters["held:a"] == 1
    assert [r for r in sim.advance(minutes=14) if r.name == "release"] == []
    released = [r for r in sim.advance(minutes=1) if r.name == "release"]
    assert [(r.job_id, r.attempt, r.ok) for r in released] == [(job, 1, True)]
    assert sim.counters["held:a"] == 0
    assert [r for r in sim.advance(days=1) if r.name == "release"] == []  # it ran once

    tallies_before = sim.counters.get("tallies", 0)
    runs = [r for r in sim.advance(days=3) if r.name == "tally"]
    assert len(runs) == 3  # every day at 18:00 county time
    for run in runs:
        fired = dt.datetime.fromtimestamp(run.at, COUNTY_TIME)
        assert (fired.hour, fired.minute, run.ok) == (18, 0, True)
        assert run.job_id.endswith(f".{int(run.at)}")  # each firing its own id
    assert sim.counters["tallies"] == tallies_before + 3


def test_a_failing_job_runs_again_after_its_backoff_and_is_logged(sim: Simulator) -> None:
    sim.post("/flaky/2")
    flaky = [r for r in sim.advance(minutes=5) if r.name == "flaky"]
    assert [(r.attempt, r.ok, r.code) for r in flaky] == [
        (1, False, "miniapp.error"),
        (2, False, "miniapp.error"),
        (3, True, ""),
    ]
    gaps = [round(later.at - earlier.at) for earlier, later in itertools.pairwise(flaky)]
    assert gaps == [30, 60]
    failed = [log for log in sim.logs if log["event"] == "job failed"]
    assert [(log["attempt"], log["retry_in_s"]) for log in failed] == [(1, 30.0), (2, 60.0)]

    sim.post("/flaky/99")
    given_up = [r for r in sim.advance(hours=1) if r.name == "flaky"]
    assert [r.attempt for r in given_up] == [1, 2, 3, 4, 5]  # five runs, then it is given up
    assert given_up[-1].retry_in_s is None and not any(r.ok for r in given_up)
    assert [j["status"] for j in sim.jobs if j["name"] == "flaky"] == ["done", "failed"]


def test_the_retry_pause_doubles_to_its_most_however_many_tries_came_before() -> None:
    """A count of tries with no bound (the scan outbox's put-off ones grow for as long as an app is suspended)
    still gets a pause: the longest, not an OverflowError past 2**1024."""
    from yima_sdk.contract import job_retry_delay

    assert [job_retry_delay(n) for n in (1, 2, 3)] == [30.0, 60.0, 120.0]
    assert [job_retry_delay(n, 5.0, 300.0) for n in (1025, 10**6)] == [300.0, 300.0]
