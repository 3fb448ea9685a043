"""Platform test fixtures: a database per test, the app with a real sandbox (all layers required, one worker per
app), developers, operators, and helpers that pack, publish, review and release a probe app over the real HTTP API.
Async tests here run on uvloop, those marked `both_loops` on asyncio too (tests/event_loops.py)."""

from __future__ import annotations

import os
import secrets
import shutil
import tempfile
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from litestar import Litestar
from yima_sdk.pack import pack

from sandbox import SandboxSettings
from server.app import create_app
from server.db import apply_migrations
from server.platform.config import PlatformSettings
from server.platform.plugin import PlatformPlugin
from server.platform.runtime.events import PlatformScanSink
from server.settings import Settings
from tests.conftest import AppClient, Session, database_apart, login, login_with_role, run_apart
from tests.event_loops import loops_for as pytest_asyncio_loop_factories
from tests.platform.probe_app import PROBE_MANIFEST, PROBE_SOURCE


async def _migrate(dsn: str) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        await apply_migrations(conn)
    finally:
        await conn.close()


@pytest.fixture(scope="session")
def migrated_template() -> Iterator[str]:
    """A migrated, otherwise empty database that each platform test's database is copied from (a copy takes a
    fraction of the migrations' time)."""
    with database_apart() as dsn:
        run_apart(_migrate(dsn))
        yield dsn.rpartition("/")[2]


@pytest.fixture
def database_url(migrated_template: str) -> Iterator[str]:
    """Each platform test its own database. A server starts the workers of every released app at start-up, so
    over one database shared by the session each test's server waited for the apps of every test before it.
    Sync (made apart from the tests' loop), so that sync tests and fixtures can use it too."""
    with database_apart(template=migrated_template) as dsn:
        yield dsn


@pytest.fixture
def redis_namespace(database_url: str) -> str:
    # ids restart in each database: keys named after them (per-account rate limits) get a namespace of their own
    return f"yimatest-{secrets.token_hex(4)}:"


@pytest.fixture(scope="session")
def apps_dir() -> Iterator[Path]:
    # under /tmp with 0755 all the way: the sandbox's unprivileged uid must read unpacked apps
    folder = Path(tempfile.mkdtemp(prefix="yima-platform-apps-"))
    os.chmod(folder, 0o755)
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def app(settings: Settings, apps_dir: Path) -> Litestar:
    application = create_app(settings)
    plugin = application.plugins.get(PlatformPlugin)
    plugin.config = PlatformSettings(
        sandbox=SandboxSettings(max_workers=1, queue_limit=256),  # production layers: all required
        apps_dir=apps_dir,
        max_request_bytes=64 * 1024,
        max_response_bytes=256 * 1024,
        scan_deadline_ms=300,
    )
    return application


def new_app_id(name: str = "probe") -> str:
    return f"test.p{secrets.token_hex(4)}.{name}"


def write_probe(root: Path, app_id: str, version: str = "1.0.0") -> Path:
    folder = root / f"{app_id}-{version}"
    folder.mkdir(parents=True)
    (folder / "miniapp.toml").write_text(
        PROBE_MANIFEST.replace("{app_id}", app_id).replace("{version}", version)
    )
    (folder / "app.py").write_text(PROBE_SOURCE.replace("{version}", version))
    (folder / "tests").mkdir()
    (folder / "tests" / "test_probe.py").write_text("def test_nothing():\n    pass\n")  # not shipped
    return folder


@dataclass
class Team:
    """A developer with a token and an operator, on one running app."""

    client: AppClient
    developer: Session
    token: str
    operator: Session

    @property
    def dev_headers(self) -> dict[str, str]:
        return {"authorization": f"Bearer {self.token}", "content-type": "application/zip"}

    @property
    def scan_events(self) -> PlatformScanSink:
        """The sink the terminals domain hands each recorded scan to (as `create_app` wires it)."""
        return self.client.app.plugins.get(PlatformPlugin).sink

    registered: set[str] = field(default_factory=set)

    async def register(self, app_id: str) -> None:
        """Register `app_id` to this team's developer the way it is done: an operator gives an organisation the
        id's parent namespace (or adds the developer to the one holding it), the developer requests the id, the
        operator approves."""
        if app_id in self.registered:
            return
        namespace = app_id.rpartition(".")[0]
        r = await self.client.post(
            "/v1/admin/developer-orgs",
            json={
                "name": f"team {namespace}",
                "namespace": namespace,
                "members": [self.developer.account_id],
            },
            headers=self.operator.headers,
        )
        if r.status_code == 409:  # held already (by an earlier team over this database): join it
            org_id = r.json()["extra"]["org_id"]
            r = await self.client.put(
                f"/v1/admin/developer-orgs/{org_id}/members/{self.developer.account_id}",
                headers=self.operator.headers,
            )
        assert r.status_code in (200, 201), r.text
        r = await self.client.post(
            "/v1/developer/app-ids",
            json={"app_id": app_id},
            headers={"authorization": f"Bearer {self.token}"},
        )
        assert r.status_code in (200, 201), r.text
        if r.json()["status"] == "pending":
            r = await self.client.post(
                f"/v1/admin/app-ids/{app_id}/decision",
                json={"decision": "approve", "reason": "namespace verified"},
                headers=self.operator.headers,
            )
            assert r.status_code == 200, r.text
        assert r.json()["status"] == "approved", r.text
        self.registered.add(app_id)

    async def publish(self, data: bytes, app_id: str, *, register: bool = True) -> Any:
        """Upload; unless `register` is False the id is registered to the team first."""
        if register:
            await self.register(app_id)
        return await self.client.post(
            f"/v1/developer/apps/{app_id}/versions", content=data, headers=self.dev_headers
        )

    async def admin(self, method: str, path: str, **kw: Any) -> Any:
        return await self.client.request(
            method, f"/v1/admin/miniapps{path}", headers=self.operator.headers, **kw
        )

    async def ship(
        self, folder: Path, *, percent: int = 100, whitelist: list[int] | None = None
    ) -> tuple[str, str]:
        """pack -> publish -> approve -> release; returns (app_id, version)."""
        package = pack(folder)
        app_id, version = package.manifest.id, package.manifest.version
        r = await self.publish(package.data, app_id)
        assert r.status_code == 201, r.text
        assert r.json()["status"] == "in_review", r.json()
        r = await self.admin(
            "POST",
            f"/{app_id}/versions/{version}/review",
            json={"decision": "approve", "reason": "looks fine"},
        )
        assert r.status_code == 200, r.text
        r = await self.admin(
            "POST",
            f"/{app_id}/release",
            json={"version": version, "percent": percent, "whitelist": whitelist or []},
        )
        assert r.status_code == 200, r.text
        return app_id, version


async def make_team(client: AppClient) -> Team:
    developer = await login_with_role(client, "developer")
    r = await client.post("/v1/developer/tokens", headers=developer.headers)
    assert r.status_code == 201, r.text
    operator = await login_with_role(client, "operator")
    return Team(client, developer, r.json()["token"], operator)


@pytest.fixture
async def team(client: AppClient) -> AsyncIterator[Team]:
    yield await make_team(client)


async def call(client: AppClient, who: Session, app_id: str, method: str, path: str, **kw: Any) -> Any:
    return await client.request(method, f"/v1/miniapps/{app_id}/api{path}", headers=who.headers, **kw)


__all__ = [
    "Team",
    "call",
    "login",
    "make_team",
    "new_app_id",
    "pytest_asyncio_loop_factories",
    "write_probe",
]
