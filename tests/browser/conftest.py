"""Pages in real Chromium: Debian's `chromium` (installed by `.ci/run`) driven by Playwright through
`executable_path`, so no browser is downloaded; and one real `yima dev` (the CLI, uvicorn's default loop, the
embedded PostgreSQL, the demo data) shared by every page test of the session.

    async def test_something(web: RealServer, browser: Browser) -> None:
        async with opened(browser, web, "/app/") as tab:
            await tab.page.get_by_role("button", name="登录").click()
            ...
        assert tab.outside == [] and tab.errors == []   # nothing asked of another origin; no console error

`YIMA_TEST_CHROMIUM` points at another Chromium binary (like the suite's other `YIMA_TEST_*` settings)."""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import pytest
from playwright.async_api import Browser, ConsoleMessage, Page, Route, async_playwright

from tests.e2e._real import RealServer, private_folder, real_server, server_env

CHROMIUM = os.environ.get("YIMA_TEST_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
HAVE_CHROMIUM = os.path.exists(CHROMIUM)
PHONE: dict[str, Any] = {
    "viewport": {"width": 390, "height": 844},
    "device_scale_factor": 2,
    "is_mobile": True,
    "has_touch": True,
}
DESKTOP: dict[str, Any] = {"viewport": {"width": 1366, "height": 900}}


@pytest.fixture(scope="session")
def web() -> Iterator[RealServer]:
    """`yima dev` as a newcomer runs it: embedded PostgreSQL, in-process cache, the demo residents and terminal."""
    with private_folder("yima-web-") as folder:
        with real_server("dev", env=server_env("", folder / "data", redis=False)) as server:
            yield server


@pytest.fixture(scope="session")
async def browser() -> AsyncIterator[Browser]:
    if not HAVE_CHROMIUM:
        pytest.fail(f"Chromium not found at {CHROMIUM}: install Debian's `chromium` (.ci/run does)")
    async with async_playwright() as playwright:
        chromium = await playwright.chromium.launch(executable_path=CHROMIUM)
        try:
            yield chromium
        finally:
            await chromium.close()


@dataclass
class Tab:
    page: Page
    outside: list[str] = field(default_factory=list)
    """Requests the page made to any other origin (each refused, so no page works only because the internet is)."""
    errors: list[str] = field(default_factory=list)
    """Console errors and uncaught exceptions, CSP violations included."""
    requests: list[str] = field(default_factory=list)
    """`METHOD url` of every request the page and its frames made, from the first (to count round trips)."""


@contextlib.asynccontextmanager
async def opened(
    browser: Browser, server: RealServer, path: str, *, size: dict[str, Any] = PHONE, locale: str = "zh-CN"
) -> AsyncIterator[Tab]:
    """A fresh browser context (no cookies, no storage) with `path` on `server` loaded."""
    context = await browser.new_context(locale=locale, base_url=server.url, **size)
    here = urlsplit(server.url)

    def elsewhere(url: str) -> bool:
        parts = urlsplit(url)
        return parts.scheme not in ("data", "blob", "about") and (parts.scheme, parts.netloc) != (
            here.scheme,
            here.netloc,
        )

    page = await context.new_page()
    tab = Tab(page)

    async def refuse(route: Route) -> None:
        tab.outside.append(route.request.url)
        await route.abort()

    def console(message: ConsoleMessage) -> None:
        if message.type == "error":
            tab.errors.append(message.text)

    await context.route(elsewhere, refuse)
    page.on("console", console)
    page.on("pageerror", lambda error: tab.errors.append(str(error)))
    page.on("request", lambda request: tab.requests.append(f"{request.method} {request.url}"))
    try:
        await page.goto(path)
        yield tab
    finally:
        await context.close()
