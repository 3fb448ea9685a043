"""The jobs mini-app the platform and end-to-end tests publish: holds released by a one-shot job, a schedule
that tallies, a job that fails a given number of times, and a burst of jobs that count their own runs."""

from __future__ import annotations

from pathlib import Path

JOBS_MANIFEST = """
id = "{app_id}"
name = "Jobs probe"
version = "1.0.0"
entry = "app:app"
capabilities = ["storage", "jobs", "log"]

[jobs]
tally = "0 18 * * *"
"""

JOBS_SOURCE = """
import asyncio
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


@app.post("/burst/{n}")
async def burst(ctx, request):
    return [await ctx.jobs.schedule(dt.timedelta(0), "count", {}) for _ in range(int(request.path_params["n"]))]


@app.get("/counter/{name}")
async def counter(ctx, request):
    return await ctx.storage.counter_get(request.path_params["name"])


@app.post("/counts")
async def counts(ctx, request):
    return {job: await ctx.storage.counter_get(f"count:{job}") for job in request.json()}


@app.get("/docs/{prefix}")
async def docs(ctx, request):
    page = await ctx.storage.list(request.path_params["prefix"], limit=100)
    return {doc.key: doc.value for doc in page.items}


@app.job("release")
async def release(ctx, job):
    try:
        await ctx.storage.put(f"ran:{job.job_id}", job.attempt, expected_version=0)
    except VersionConflict:
        return  # ran already: at least once, never twice in effect
    await ctx.storage.counter_add(f"held:{job.data['slot']}", -1)


@app.job("tally")
async def tally(ctx, job):
    await ctx.storage.put(f"tally:{job.job_id}", job.attempt)


@app.job("flaky")
async def flaky_job(ctx, job):
    if job.attempt <= job.data["fails"]:
        raise RuntimeError(f"attempt {job.attempt} fails")
    await ctx.storage.put(f"flaky:{job.job_id}", job.attempt)


@app.job("count")
async def count(ctx, job):
    await asyncio.sleep(0.02)  # a run takes a while: another runner would have time to take the same job
    await ctx.storage.counter_add(f"count:{job.job_id}", 1)
"""


def write_jobs_app(root: Path, app_id: str) -> Path:
    folder = root / app_id
    folder.mkdir(parents=True)
    (folder / "miniapp.toml").write_text(JOBS_MANIFEST.replace("{app_id}", app_id))
    (folder / "app.py").write_text(JOBS_SOURCE)
    return folder
