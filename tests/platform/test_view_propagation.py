"""A transition reaches the other server processes at once, even while the process that made it is still starting
the new version's workers (which can take seconds on a loaded host)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from litestar import Litestar

from sandbox import SandboxSettings
from server.app import create_app
from server.platform.config import PlatformSettings
from server.platform.plugin import PlatformPlugin
from server.settings import Settings
from tests.conftest import serve
from tests.platform.conftest import make_team, new_app_id, write_probe


def server_process(settings: Settings, apps_dir: Path, refresh_s: float) -> Litestar:
    """One more server process over the same database and cache (the way `yima serve --workers 2` runs)."""
    application = create_app(settings)
    application.plugins.get(PlatformPlugin).config = PlatformSettings(
        sandbox=SandboxSettings(max_workers=1, queue_limit=256),
        apps_dir=apps_dir,
        scan_deadline_ms=300,
        refresh_s=refresh_s,
    )
    return application


async def _until_starting(
    starting: asyncio.Event, release: asyncio.Task[object], log: pytest.LogCaptureFixture
) -> None:
    """Wait until the releasing process starts the new version's workers. If the release ends first, fail at once
    with its error, or with why the version did not load (refreshes try a failed version again only a minute later,
    so waiting on would end in a bare timeout)."""
    waiting = asyncio.ensure_future(starting.wait())
    try:
        await asyncio.wait({waiting, release}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        waiting.cancel()
    if not starting.is_set():
        release.result()
        failures = [
            getattr(r, "error", "") for r in log.records if r.getMessage() == "mini-app failed to load"
        ]
        raise AssertionError(f"the release was answered but its version never started loading: {failures}")


async def test_a_release_reaches_another_process_while_this_one_still_starts_its_workers(
    settings: Settings, apps_dir: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    first = server_process(settings, apps_dir, refresh_s=5.0)
    # The other process's periodic backstop is an hour away: only the announcement can tell it in time.
    other = server_process(settings, apps_dir, refresh_s=3600.0)
    async with serve(first) as client, serve(other):
        team = await make_team(client)
        starting = asyncio.Event()
        may_start = asyncio.Event()
        host = first.state.platform.runtime.host
        real_load = host.load

        async def held_load(folder: str | Path) -> str:
            starting.set()
            await may_start.wait()
            return await real_load(folder)

        host.load = held_load  # type: ignore[method-assign]
        app_id = new_app_id()
        release = asyncio.create_task(team.ship(write_probe(tmp_path, app_id)))
        try:
            async with asyncio.timeout(60):
                await _until_starting(starting, release, caplog)  # the releasing process now starts workers
                # The other process's view has no event to wait on: look until it shows the app.
                while app_id not in other.state.platform.runtime.apps:  # noqa: ASYNC110
                    await asyncio.sleep(0.01)
        finally:
            may_start.set()
        await release
        assert other.state.platform.runtime.apps[app_id].suspended is False
