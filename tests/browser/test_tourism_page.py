"""The tourism app's page (miniapps/tourism/ui) in real Chromium, in `yima-sdk dev`'s simulated shell as fixture
resident grandpa (born 1948): the demo spots and routes its seed job wrote, a ticket reserved free of charge (70
or more, by the birth date he shares when the shell asks), shown as its pass's QR code by the shell
(yima.showPass), then cancelled; another resident's pass or a forged one is not drawn."""

from __future__ import annotations

import datetime as dt
import io
import shutil
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import zxingcpp
from PIL import Image
from playwright.async_api import Browser, Dialog
from yima_sdk.cron import COUNTY_TIME

from tests.browser.conftest import opened
from tests.browser.test_miniapp_passes import forged
from tests.browser.test_sdk_dev_page import _server, sdk_dev_server
from tests.e2e._real import eventually, private_folder

TOURISM = Path(__file__).resolve().parents[2] / "miniapps" / "tourism"
GRANDPA = {"x-yima-user": "grandpa"}
TOURISM_ID = "gov.guangde.tourism"


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
        await page.locator(f'#slots[data-for="taiji-cave {tomorrow}"]').wait_for(state="attached")
        morning = page.locator("#slots li").filter(has_text="09:00–12:00")
        await morning.get_by_role("button", name="预约 Reserve").click()
        await page.get_by_role("status").filter(has_text="免票").wait_for()
        assert await page.get_by_role("status").text_content() == "太极洞 Taiji Cave 09:00 · 0 元 · 免票 free"
        assert len(asked) == 1 and asked[0].startswith("Allow this app to read birth_date?"), asked
        # the slot list is read again after the status shows: wait for it, within the locator's bound
        await page.locator("#slots li").filter(has_text="09:00–12:00 · 299 left").wait_for()
        assert await morning.text_content() == "09:00–12:00 · 299 left预约 Reserve"

        ticket = page.locator("#tickets li").filter(has_text=f"{tomorrow} 09:00 太极洞 Taiji Cave · 1 人")
        # The ticket's pass, shown by the shell: the QR read back is the pass the app issued him.
        async with httpx.AsyncClient(base_url=tourism) as http:
            mine = (await http.get("/tickets", headers=GRANDPA)).json()["tickets"]
        payload = next(t["pass"]["payload"] for t in mine if t["status"] == "booked")
        await ticket.get_by_role("button", name="出示门票 Show ticket").click()
        picture = tab.page.get_by_role("img", name="the pass as a QR code")
        await picture.evaluate("img => img.decode()")  # drawn, not just in the page
        shown = Image.open(io.BytesIO(await picture.screenshot())).convert("L")
        found = zxingcpp.read_barcodes(shown, formats=zxingcpp.BarcodeFormat.QRCode)
        assert [f.text for f in found] == [payload]
        # The simulated core refuses what production refuses: another resident's pass, a forged one.
        qr = f"/v1/me/miniapps/{TOURISM_ID}/passes/qr"
        async with httpx.AsyncClient(base_url=tourism) as http:
            alice = {"authorization": "Bearer sim.alice"}
            r = await http.post(qr, json={"payload": payload}, headers=alice)
            assert (r.status_code, r.json()["code"]) == (404, "pass.not_found")
            grandpa = {"authorization": "Bearer sim.grandpa"}
            r = await http.post(qr, json={"payload": forged(payload)}, headers=grandpa)
            assert (r.status_code, r.json()["code"]) == (422, "pass.invalid")
        await ticket.get_by_role("button", name="退票 Cancel").click()
        await page.get_by_role("status").filter(has_text="已退票").wait_for()
        await page.locator("#tickets li").first.wait_for(state="detached")
    assert tab.outside == [] and tab.errors == []
