"""The bus rides app's page (miniapps/bus/ui) in real Chromium, in `yima-sdk dev`'s simulated shell as fixture
resident grandpa (born 1948): he shares his birth date when the shell asks, a bus terminal on line 1 scans his code,
and the page shows the free ride (70 or more), the month's statement, and takes his dispute."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from playwright.async_api import Browser, Dialog

from tests.browser.conftest import opened
from tests.browser.test_sdk_dev_page import _server, sdk_dev_server
from tests.e2e._real import eventually, private_folder

BUS = Path(__file__).resolve().parents[2] / "miniapps" / "bus"
GRANDPA = {"x-yima-user": "grandpa"}


@pytest.fixture(scope="module")
def bus() -> Iterator[str]:
    with private_folder("yima-bus-page-") as folder:
        app = shutil.copytree(BUS, folder / "bus", ignore=shutil.ignore_patterns("tests", "__pycache__"))
        with sdk_dev_server(app, "grandpa") as url:
            # the seed job runs within a second of the start
            eventually(lambda: httpx.get(f"{url}/lines", headers=GRANDPA).status_code == 200, limit_s=30)
            yield url


async def test_a_senior_sees_his_free_ride_in_the_statement_and_disputes_it(
    browser: Browser, bus: str
) -> None:
    async with opened(browser, _server(bus), "/") as tab:
        asked: list[str] = []

        async def accept(dialog: Dialog) -> None:
            asked.append(dialog.message)
            await dialog.accept()

        tab.page.on("dialog", accept)
        page = tab.page.frame_locator("iframe")
        await page.get_by_role("button", name="按年龄享受优惠 Use my age for concessions").click()
        await page.get_by_role("status").filter(has_text="已开启").wait_for()
        assert len(asked) == 1 and asked[0].startswith("Allow this app to read birth_date?"), asked

        async with httpx.AsyncClient() as client:
            scanned = await client.post(
                f"{bus}/_sim/scan", json={"scene_kind": "bus", "user": "grandpa", "unit": "line:1"}
            )
        assert scanned.json() == {"lines": ["1路 ¥0.00", "70岁以上免费 aged 70+"]}, scanned.text
        await page.get_by_role("button", name="刷新 Refresh").click()
        ride = page.locator("#rides li").filter(has_text="1路 · ¥0.00 · 70岁以上免费")
        await ride.wait_for()
        assert (await page.locator("#statement").text_content() or "").startswith("1 次乘车 rides")
        await ride.get_by_role("button", name="申诉 Dispute").click()
        await page.get_by_role("status").filter(has_text="已提交申诉").wait_for()
    assert tab.outside == [] and tab.errors == []
