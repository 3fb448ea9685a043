"""Two nodes: two separate `yima serve` processes (their own ports, data folders, sandbox hosts and job runners)
on one PostgreSQL database and one Redis, as a county runs more than one machine. Jobs scheduled through either
node run exactly once, whichever node's runner claims them."""

from __future__ import annotations

import collections
import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.e2e._real import (
    RealServer,
    eventually,
    fresh_database,
    private_folder,
    real_server,
    release_app,
    server_env,
    sign_in,
)
from tests.platform.conftest import new_app_id
from tests.platform.jobs_app import write_jobs_app

# A job that takes a while and says in its node's log that it ran: with 60 of them due at once, one runner's
# rounds (8 jobs at a time) last long enough for the other node's runner to poll and claim some too.
SLOW_JOB = """

@app.job("slow")
async def slow(ctx, job):
    await asyncio.sleep(0.3)
    await ctx.storage.counter_add(f"count:{job.job_id}", 1)
    await ctx.log.info("slow job ran", job=job.job_id)


@app.post("/slow/{n}")
async def slow_burst(ctx, request):
    return [await ctx.jobs.schedule(dt.timedelta(0), "slow", {}) for _ in range(int(request.path_params["n"]))]
"""


@pytest.fixture(scope="module")
def nodes() -> Iterator[tuple[RealServer, RealServer, Path]]:
    with private_folder() as folder, fresh_database() as dsn:
        # one master key, one Redis namespace and one public address (the access tokens' audience) for both
        env = server_env(dsn, folder / "node1", redis=True, YIMA_PUBLIC_URL="https://yima.county.test")
        other = {**env, "YIMA_DATA_DIR": str(folder / "node2")}
        with (
            real_server("serve", "--workers", "1", "--allow-development", env=env) as one,
            real_server("serve", "--workers", "1", "--allow-development", env=other) as two,
        ):
            yield one, two, folder


def runs_in_log(node: RealServer) -> list[str]:
    """The job ids the app's `slow` job logged as run on this node (its sandbox host's records)."""
    runs = []
    for line in node.output().splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        record = entry.get("sandbox") if isinstance(entry, dict) else None
        if isinstance(record, dict) and record.get("event") == "slow job ran":
            runs.append(str(record["job"]))
    return runs


def test_two_serve_processes_share_the_jobs_and_run_each_once(
    nodes: tuple[RealServer, RealServer, Path],
) -> None:
    one, two, folder = nodes
    developer = sign_in(one, role="developer")
    operator = sign_in(one, role="operator")
    app_folder = write_jobs_app(folder / "apps", new_app_id("nodes"))
    with (app_folder / "app.py").open("a") as source:
        source.write(SLOW_JOB)
    app_id, _ = release_app(one, app_folder, developer, operator)
    api = f"/v1/miniapps/{app_id}/api"
    resident = sign_in(one)
    # the same resident on the other node: one database of accounts and one master key behind both
    elsewhere = httpx.Client(base_url=two.url, headers=resident.headers, timeout=30)

    def burst(client: httpx.Client) -> list[str]:
        r = client.post(f"{api}/slow/30")  # refused until the release reached that node (Redis pub/sub)
        assert r.status_code == 200, r.text
        return list(r.json())

    jobs = eventually(lambda: burst(resident)) + eventually(lambda: burst(elsewhere))
    assert len(set(jobs)) == 60

    def counts() -> dict[str, int] | None:
        r = elsewhere.post(f"{api}/counts", json=jobs)
        assert r.status_code == 200, r.text
        found: dict[str, int] = r.json()
        return found if all(found.values()) else None

    assert eventually(counts, limit_s=90) == dict.fromkeys(jobs, 1)  # every job ran, none twice
    ran = {"one": runs_in_log(one), "two": runs_in_log(two)}
    assert collections.Counter(ran["one"] + ran["two"]) == collections.Counter(jobs)  # each on one node only
    assert ran["one"] and ran["two"], {node: len(runs) for node, runs in ran.items()}  # both nodes took part
    for node in (one, two):
        assert "Traceback" not in node.output(), node.output()[-4000:]
