"""/schema in real Chromium: Swagger UI draws every tag of the API from the server's own files, asking nothing of
any other origin (a county intranet has no CDN) and breaking no rule of its own Content-Security-Policy."""

from __future__ import annotations

from playwright.async_api import Browser

from tests.browser.conftest import DESKTOP, opened
from tests.e2e._real import RealServer


async def test_api_docs_render_from_local_files_only(web: RealServer, browser: Browser) -> None:
    async with opened(browser, web, "/schema", size=DESKTOP, locale="en-US") as tab:
        operations = tab.page.locator(".opblock")
        await operations.first.wait_for(timeout=30_000)
        assert await operations.count() > 50  # every route of the document, not an error box
        assert await tab.page.get_by_text("/v1/me/codes/ankang").count() >= 1
        await tab.page.locator(".opblock-summary").first.click()  # opens: the bundle's scripts really run
        await tab.page.locator(".opblock-body").first.wait_for()
    assert tab.outside == []
    assert tab.errors == []
