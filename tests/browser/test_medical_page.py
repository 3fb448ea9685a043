"""The medical visits app's page (miniapps/medical/ui) in real Chromium, in `yima-sdk dev`'s simulated shell as
fixture resident grandpa (born 1948): the demo data its seed job wrote, a session booked free of charge (65 or
more, by the birth date he shares when the shell asks), then cancelled."""

from __future__ import annotations

import datetime as dt
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from playwright.async_api import Browser, Dialog
from yima_sdk.cron import COUNTY_TIME

from tests.browser.conftest import opened
from tests.browser.test_sdk_dev_page import _server, sdk_dev_server
from tests.e2e._real import private_folder

MEDICAL = Path(__file__).resolve().parents[2] / "miniapps" / "medical"


@pytest.fixture(scope="module")
def medical() -> Iterator[str]:
    with private_folder("yima-medical-page-") as folder:
        app = shutil.copytree(
            MEDICAL, folder / "medical", ignore=shutil.ignore_patterns("tests", "__pycache__")
        )
        with sdk_dev_server(app, "grandpa") as url:
            deadline = time.monotonic() + 30
            while not httpx.get(f"{url}/institutions", headers={"x-yima-user": "grandpa"}).json()[
                "institutions"
            ]:
                assert time.monotonic() < deadline, "the seed job did not run"
                time.sleep(0.2)  # polling for the seed job, run within a second of the start
            yield url


async def test_a_senior_books_a_visit_free_and_cancels_it(browser: Browser, medical: str) -> None:
    tomorrow = (dt.datetime.now(COUNTY_TIME).date() + dt.timedelta(days=1)).isoformat()
    async with opened(browser, _server(medical), "/") as tab:
        asked: list[str] = []

        async def accept(dialog: Dialog) -> None:
            asked.append(dialog.message)
            await dialog.accept()

        tab.page.on("dialog", accept)
        page = tab.page.frame_locator("iframe")
        await page.get_by_label("科室 Department").select_option("guangde-people.internal")
        await page.get_by_label("日期 Day").fill(tomorrow)
        first = page.locator("#sessions li").filter(has_text="陈明 Chen Ming").filter(has_text="am")
        await first.get_by_role("button", name="预约 Book").click()
        await page.get_by_role("status").filter(has_text="No. 1").wait_for()
        assert await page.get_by_role("status").text_content() == "No. 1 · 免挂号费 no fee"
        assert len(asked) == 1 and asked[0].startswith("Allow this app to read birth_date?"), asked

        booked = page.locator("#bookings li").filter(has_text=f"{tomorrow} am dr-chen No. 1")
        await booked.get_by_role("button", name="取消 Cancel").click()
        await page.get_by_role("status").filter(has_text="已取消").wait_for()
        await page.locator("#bookings li").first.wait_for(state="detached")
    assert tab.outside == [] and tab.errors == []
