"""`yima serve --workers 2` as operations run it (the CLI, uvicorn's default loop, PostgreSQL, Redis): a mini-app
published with the SDK is released, called through the gateway and adds its lines to a terminal's scan."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.e2e._real import (
    RealServer,
    fresh_database,
    private_folder,
    real_server,
    server_env,
    ship_and_use,
    sign_in,
)
from tests.platform.conftest import new_app_id, write_probe


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
