"""Shared fixtures: a fresh PostgreSQL database per test session on the real server, Redis with a private
namespace, settings, the app behind a real ASGI client, and a login helper that reads the SMS the app sent."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import os
import secrets
import socket
from collections.abc import AsyncIterator, Coroutine, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

import asyncpg
import httpx
import msgspec
import pytest
import uvicorn
from litestar import Litestar

from server.app import create_app
from server.identity.sms import ConsoleSender
from server.security.master_key import new_master_key_text
from server.settings import Settings, load_settings

ADMIN_DSN = os.environ.get("YIMA_TEST_ADMIN_DSN", "postgresql://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("YIMA_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
METRICS_PORT = 9464
"""The in-process app's operations port: requests to METRICS_URL arrive 'on' it (nothing is bound)."""
METRICS_URL = f"http://127.0.0.1:{METRICS_PORT}/metrics"

T = TypeVar("T")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Units of work for pytest-xdist (`make test` runs `-n 2 --dist loadgroup`): a module runs on one worker, so
    its module-scoped servers start once; the page tests are one unit, so one worker starts the session's
    `yima dev` and Chromium (tests/browser/conftest.py)."""
    if not config.pluginmanager.hasplugin("xdist"):
        return
    for item in items:
        module = item.nodeid.partition("::")[0]
        group = "browser" if module.startswith("tests/browser/") else module
        item.add_marker(pytest.mark.xdist_group(group))


def _dsn_for(database: str) -> str:
    base, _, _ = ADMIN_DSN.rpartition("/")
    return f"{base}/{database}"


async def _admin(statement: str) -> None:
    admin = await asyncpg.connect(ADMIN_DSN)
    try:
        await admin.execute(statement)
    finally:
        await admin.close()


@contextlib.asynccontextmanager
async def fresh_database(template: str | None = None) -> AsyncIterator[str]:
    """A new PostgreSQL database on the test server, dropped afterwards; yields its DSN. Empty, or a copy of
    `template` (a database nobody is connected to)."""
    name = f"yima_t_{os.getpid()}_{secrets.token_hex(3)}"
    await _admin(f'CREATE DATABASE "{name}"' + (f' TEMPLATE "{template}"' if template else ""))
    try:
        yield _dsn_for(name)
    finally:
        await _admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def run_apart(coroutine: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine to its end on an event loop of its own, in a thread of its own: for sync fixtures that must
    not touch the tests' loop (a fixture that needs it is torn down with it whenever the tests' loop changes)."""
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coroutine).result()


@contextlib.contextmanager
def database_apart(template: str | None = None) -> Iterator[str]:
    """`fresh_database` for sync fixtures, created and dropped with `run_apart`."""
    name = f"yima_t_{os.getpid()}_{secrets.token_hex(3)}"
    run_apart(_admin(f'CREATE DATABASE "{name}"' + (f' TEMPLATE "{template}"' if template else "")))
    try:
        yield _dsn_for(name)
    finally:
        run_apart(_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture(scope="session")
async def database_url() -> AsyncIterator[str]:
    async with fresh_database() as dsn:
        yield dsn


@pytest.fixture(scope="session")
def master_key() -> str:
    return new_master_key_text()


@pytest.fixture(scope="session")
def redis_namespace(database_url: str) -> str:
    # One namespace per database: a directory whose tests run on both event loops gets a database for each, and
    # ids restart in it, so keys named after ids (per-account rate limits) must not meet the other run's.
    return f"yimatest-{secrets.token_hex(4)}:"


@pytest.fixture
def settings(database_url: str, master_key: str, redis_namespace: str, tmp_path: Any) -> Settings:
    return load_settings(
        {},
        mode="test",
        database_url=database_url,
        redis_url=REDIS_URL,
        redis_namespace=redis_namespace,
        master_key=master_key,
        data_dir=str(tmp_path),
        db_pool_min=1,
        db_pool_max=5,
        metrics_port=METRICS_PORT,
    )


@pytest.fixture
async def app(settings: Settings) -> AsyncIterator[Litestar]:
    application = create_app(settings)
    yield application


class AppClient(httpx.AsyncClient):
    """Real HTTP requests through the ASGI app, on the test's own event loop (so tests may also use the app's
    pool directly); the app's lifespan runs around it like under a server."""

    app: Litestar


@contextlib.asynccontextmanager
async def serve(app: Litestar, client_address: str = "203.0.113.7") -> AsyncIterator[AppClient]:
    transport = httpx.ASGITransport(app=app, client=(client_address, 50000))
    started, stop = asyncio.Event(), asyncio.Event()

    async def run_lifespan() -> None:
        # The lifespan's task group must be entered and left by one task; fixtures set up and tear down in two.
        async with app.lifespan():
            started.set()
            await stop.wait()

    task = asyncio.create_task(run_lifespan())
    await asyncio.wait([task, asyncio.create_task(started.wait())], return_when=asyncio.FIRST_COMPLETED)
    if task.done():
        task.result()  # start-up failed: raise its error here
    try:
        async with AppClient(transport=transport, base_url="http://127.0.0.1:8000") as c:
            c.app = app
            yield c
    finally:
        stop.set()
        await task


@pytest.fixture
async def client(app: Litestar) -> AsyncIterator[AppClient]:
    async with serve(app, client_address=f"198.51.100.{secrets.randbelow(250) + 1}") as c:
        yield c


@contextlib.asynccontextmanager
async def serve_tcp(settings: Settings, **overrides: Any) -> AsyncIterator[AppClient]:
    """The app behind uvicorn on a free 127.0.0.1 port, on this event loop, its public URL that address: for
    clients that need a real socket (urllib, the app calling itself). The client talks to it over TCP."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    app = create_app(msgspec.structs.replace(settings, port=port, public_url=url, **overrides))
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, lifespan="on", log_config=None))
    task = asyncio.create_task(server.serve())
    try:
        while not server.started:
            if task.done():
                task.result()  # start-up failed: raise its error here
            await asyncio.sleep(0.01)
        async with AppClient(base_url=url) as client:
            client.app = app
            yield client
    finally:
        server.should_exit = True
        await task


def free_port() -> int:
    """A loopback port nobody listens on right now (for servers the tests start)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def random_phone() -> str:
    return "1" + secrets.choice("3456789") + "".join(secrets.choice("0123456789") for _ in range(9))


def last_code(app: Litestar, phone: str) -> str:
    sender = app.state.identity.sms
    assert isinstance(sender, ConsoleSender)
    return sender.messages_for(phone)[-1].params["code"]


@dataclass
class Session:
    phone: str
    access_token: str
    refresh_token: str
    account_id: int

    @property
    def headers(self) -> dict[str, str]:
        return {"authorization": f"Bearer {self.access_token}"}


async def login(client: AppClient, phone: str | None = None) -> Session:
    phone = phone or random_phone()
    r = await client.post("/v1/auth/otp", json={"phone": phone})
    assert r.status_code == 202, r.text
    code = last_code(client.app, phone)
    r = await client.post("/v1/auth/token", json={"phone": phone, "code": code})
    assert r.status_code == 200, r.text
    body = r.json()
    me = await client.get("/v1/me", headers={"authorization": f"Bearer {body['access_token']}"})
    return Session(phone, body["access_token"], body["refresh_token"], me.json()["id"])


async def login_with_role(client: AppClient, role: str) -> Session:
    """An account holding `role`, granted the way an operator would (service call), then a fresh login."""
    phone = random_phone()
    app = client.app
    from server.auth.roles import Role

    async with app.state.core.db.transaction() as conn:
        account_id = await app.state.identity.account_id_for_phone(conn, phone, create=True)
    await app.state.identity.grant_role("test", account_id, Role(role))
    return await login(client, phone)


def valid_id_number(region: str = "341822", birth: str = "19900101", seq: str = "123") -> str:
    from server.identity.id_number import check_digit

    first17 = region + birth + seq
    return first17 + check_digit(first17)


@pytest.fixture
def json_of() -> Any:
    return lambda r: msgspec.json.decode(r.content)


@pytest.fixture(scope="session")
def repo_root() -> Iterator[str]:
    yield os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


async def cut_while_it_waits(
    database_url: str, hold: str, hold_args: tuple[Any, ...], waiting: str, send: Any
) -> Any:
    """Run `send()` while a transaction holds a lock (`hold`) that its statement waits on, then end the waiting
    backend, as a PostgreSQL restart or a worker dying would; returns what `send()` answered.

    Both connections are superusers', as an operator's would be; `waiting` is a fragment of the waiting query."""
    holder, admin = await asyncpg.connect(database_url), await asyncpg.connect(database_url)
    try:
        async with holder.transaction():
            await holder.execute(hold, *hold_args)
            pending = asyncio.ensure_future(send())
            pid = None
            for _ in range(500):
                pid = await admin.fetchval(
                    "SELECT pid FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND pid <> pg_backend_pid()"
                    " AND datname = current_database() AND query LIKE $1",
                    f"%{waiting}%",
                )
                if pid is not None:
                    break
                await asyncio.sleep(0.01)
            assert pid is not None, f"no statement like {waiting!r} waited on the lock"
            assert await admin.fetchval("SELECT pg_terminate_backend($1, 5000)", pid)
            return await pending
    finally:
        await holder.close()
        await admin.close()
