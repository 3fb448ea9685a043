"""A mini-app whose worker cannot start: the resident gets 503 `miniapp.failed_to_start` (not `busy` after a
wait), a scan at its scene marks the app's part missing with that reason, and no worker process is left."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from litestar import Litestar

from sandbox import SandboxSettings
from server.app import create_app
from server.platform.config import PlatformSettings
from server.platform.plugin import PlatformPlugin
from server.settings import Settings
from tests.conftest import login_with_role
from tests.credentials.helpers import (
    ankang_payload,
    register_terminal,
    scan,
    terminal_token,
    verified_resident,
)
from tests.platform.conftest import Team, call, new_app_id, write_probe
from tests.sandbox.sandbox_helpers import live_workers, no_workers_left

# on both loops (tests/event_loops.py): a worker that fails to start: once broken on uvloop only
pytestmark = pytest.mark.both_loops


@pytest.fixture
def app(settings: Settings, apps_dir: Path) -> Litestar:
    application = create_app(settings)
    application.plugins.get(PlatformPlugin).config = PlatformSettings(
        sandbox=SandboxSettings(max_workers=1, start_timeout_s=1.0),
        apps_dir=apps_dir,
        scan_deadline_ms=10_000,
    )
    return application


HANGS = "import os\nos.read(os.pipe()[0], 1)\n"
"""An app whose import blocks on a pipe nobody writes to: its worker never reports Ready."""


@pytest.fixture
async def hanging_app(team: Team, tmp_path: Path) -> AsyncIterator[tuple[str, set[int]]]:
    """A released app that never starts, and the workers that ran before it was released."""
    folder = write_probe(tmp_path, new_app_id("hangs"))
    (folder / "app.py").write_text(HANGS)
    before = live_workers()
    app_id, _ = await team.ship(folder)
    yield app_id, before


async def test_an_app_that_never_starts_answers_failed_to_start_and_leaves_no_worker(
    team: Team, hanging_app: tuple[str, set[int]]
) -> None:
    app_id, before = hanging_app
    resident, _ = await verified_resident(team.client)

    for _ in range(2):  # every call tries a fresh start and says why it failed
        r = await call(team.client, resident, app_id, "GET", "/whoami")
        assert r.status_code == 503, r.text
        assert r.json()["code"] == "miniapp.failed_to_start"
        assert await no_workers_left(before)

    scene = f"clinic-{uuid.uuid4().hex[:6]}"
    r = await team.admin("PUT", f"/scenes/clinic/{scene}", json={"app_id": app_id})
    assert r.status_code == 200, r.text
    operator = await login_with_role(team.client, "operator")
    terminal_id, key = await register_terminal(team.client, operator, kind="clinic", scene=scene)
    answer = await scan(
        team.client,
        await terminal_token(team.client, terminal_id, key),
        await ankang_payload(team.client, resident),
    )
    assert answer["result"] == "accept"
    assert answer["miniapp"]["missing"] is True
    assert answer["miniapp"]["reason"] == "miniapp.failed_to_start"
    assert await no_workers_left(before)


async def test_refreshes_leave_a_version_that_failed_to_start_alone_for_a_while(
    team: Team, hanging_app: tuple[str, set[int]]
) -> None:
    app_id, _ = hanging_app
    runtime = team.client.app.state.platform.runtime
    # The release's own refresh tries it once, in the background, and fails: wait for that (boundedly; starting
    # a worker that never reports ready takes its start timeout and more on a busy machine).
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 60
    while not any(app_id in key for key in runtime._retry_at):
        assert loop.time() < deadline, "the release's refresh never tried the app"
        await asyncio.sleep(0.05)
    tried: list[str] = []
    real_load = runtime.host.load

    async def counted_load(folder: str | Path) -> str:
        tried.append(str(folder))
        return await real_load(folder)

    runtime.host.load = counted_load
    await runtime.refresh()
    await runtime.refresh()
    assert not [folder for folder in tried if app_id in folder], "a refresh started the broken app again"

    resident, _ = await verified_resident(team.client)
    r = await call(team.client, resident, app_id, "GET", "/whoami")  # a resident's call still tries at once
    assert r.json()["code"] == "miniapp.failed_to_start"
    assert [folder for folder in tried if app_id in folder]
