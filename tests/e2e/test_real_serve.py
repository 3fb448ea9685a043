"""`yima serve --workers 2` as operations run it (the CLI, uvicorn's default loop, PostgreSQL, Redis): a mini-app
published with the SDK is released, called through the gateway and adds its lines to a terminal's scan."""

from __future__ import annotations

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
    ship_and_use,
    sign_in,
)
from tests.platform.conftest import new_app_id, write_probe
from tests.platform.jobs_app import write_jobs_app


@pytest.fixture(scope="module")
def folder() -> Iterator[Path]:
    with private_folder() as folder:
        yield folder


@pytest.fixture(scope="module")
def serve(folder: Path) -> Iterator[RealServer]:
    with fresh_database() as dsn:
        env = server_env(dsn, folder / "data", redis=True)
        with real_server("serve", "--workers", "2", "--allow-development", env=env) as server:
            yield server


def test_a_published_app_runs_in_both_workers_and_reaches_the_terminal(
    serve: RealServer, folder: Path
) -> None:
    developer = sign_in(serve, role="developer")
    operator = sign_in(serve, role="operator")
    app_id, resident = ship_and_use(
        serve, write_probe(folder / "apps", new_app_id("serve")), developer, operator
    )
    # Each uvicorn worker runs its own sandbox host; new connections are spread over the workers, and
    # whichever one a call reaches runs the app.
    for _ in range(8):
        with httpx.Client(base_url=serve.url, headers=resident.headers, timeout=30) as fresh:
            r = fresh.get(f"/v1/miniapps/{app_id}/api/whoami")
            assert r.status_code == 200, r.text
    assert "Traceback" not in serve.output(), serve.output()[-4000:]


def test_the_workers_share_one_database_of_jobs_and_run_each_job_once(
    serve: RealServer, folder: Path
) -> None:
    """Each uvicorn worker is a node with its own job runner; both poll the one database for due jobs and claim
    them with FOR UPDATE SKIP LOCKED under a lease. A burst of jobs due at once runs, every one exactly once
    (each run adds 1 to the job's own counter)."""
    developer = sign_in(serve, role="developer")
    operator = sign_in(serve, role="operator")
    app_id, _ = release_app(serve, write_jobs_app(folder / "apps", new_app_id("jobs")), developer, operator)
    resident = sign_in(serve)
    api = f"/v1/miniapps/{app_id}/api"

    def burst() -> list[str]:
        r = resident.post(f"{api}/burst/30")  # refused until the release reached the worker it lands on
        assert r.status_code == 200, r.text
        return list(r.json())

    jobs = eventually(burst)
    assert len(set(jobs)) == 30

    def counts() -> dict[str, int] | None:
        r = resident.post(f"{api}/counts", json=jobs)
        assert r.status_code == 200, r.text
        found: dict[str, int] = r.json()
        return found if all(found.values()) else None

    assert eventually(counts, limit_s=60) == dict.fromkeys(jobs, 1)
    assert "Traceback" not in serve.output(), serve.output()[-4000:]
