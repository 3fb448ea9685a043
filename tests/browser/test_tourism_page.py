"""The tourism app's page (miniapps/tourism/ui) in real Chromium, in `yima-sdk dev`'s simulated shell as fixture
resident grandpa (born 1948): the demo spots and routes its seed job wrote, a ticket reserved free of charge (70
or more, by the birth date he shares when the shell asks), then cancelled."""

from __future__ import annotations

import datetime as dt
import shutil
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from playwright.async_api import Browser, Dialog
from yima_sdk.cron import COUNTY_TIME

from tests.browser.conftest import opened
from tests.browser.test_sdk_dev_page import _server, sdk_dev_server
from tests.e2e._real import eventually, private_folder

TOURISM = Path(__file__).resolve().parents[2] / "miniapps" / "tourism"
GRANDPA = {"x-yima-user": "grandpa"}


@pytest.fixture(scope="module")
def tourism() -> Iterator[str]:
    with private_folder("yima-tourism-page-") as folder:
        app = shutil.copytree(
            TOURISM, folder / "tourism", ignore=shutil.ignore_patterns("tests", "__pycache__")
        )
        with sdk_dev_server(app, "grandpa") as url:
            # the seed job runs within a second of the start
            eventually(lambda: httpx.get(f"{url}/spots", headers=GRANDPA).json()["spots"], limit_s=30)
            yield url


async def test_a_senior_reserves_a_free_ticket_and_cancels_it(browser: Browser, tourism: str) -> None:
    tomorrow = (dt.datetime.now(COUNTY_TIME).date() + dt.timedelta(days=1)).isoformat()
    async with opened(browser, _server(tourism), "/") as tab:
        asked: list[str] = []

        async def accept(dialog: Dialog) -> None:
            asked.append(dialog.message)
            await dialog.accept()

        tab.page.on("dialog", accept)
        page = tab.page.frame_locator("iframe")
        await page.locator("#packages li").filter(has_text="长三角之心").wait_for()
        await page.get_by_label("景区 Spot").select_option("taiji-cave")
        await page.get_by_label("日期 Day").fill(tomorrow)
        morning = page.locator("#slots li").filter(has_text="09:00–12:00")
        await morning.get_by_role("button", name="预约 Reserve").click()
        await page.get_by_role("status").filter(has_text="免票").wait_for()
        assert await page.get_by_role("status").text_content() == "太极洞 Taiji Cave 09:00 · 0 元 · 免票 free"
        assert len(asked) == 1 and asked[0].startswith("Allow this app to read birth_date?"), asked
        # the slot list is read again after the status shows: wait for it, within the locator's bound
        await page.locator("#slots li").filter(has_text="09:00–12:00 · 299 left").wait_for()
        assert await morning.text_content() == "09:00–12:00 · 299 left预约 Reserve"

        ticket = page.locator("#tickets li").filter(has_text=f"{tomorrow} 09:00 太极洞 Taiji Cave · 1 人")
        await ticket.get_by_role("button", name="退票 Cancel").click()
        await page.get_by_role("status").filter(has_text="已退票").wait_for()
        await page.locator("#tickets li").first.wait_for(state="detached")
    assert tab.outside == [] and tab.errors == []
