"""The tourism app's page (miniapps/tourism/ui) in real Chromium, in `yima-sdk dev`'s simulated shell as fixture
resident grandpa (born 1948): the demo spots and routes its seed job wrote, a ticket reserved free of charge (70
or more, by the birth date he shares when the shell asks), shown as its pass's QR code by the shell
(yima.showPass), then cancelled; another resident's pass or a forged one is not drawn; a spot's reviews and
average read by anyone, and a review written from a ticket that entered."""

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
        # the page asks first (a free ticket: nothing to refund), then the ticket stays listed, cancelled
        await ticket.get_by_role("button", name="退票 Cancel").click()
        sure = page.get_by_role("dialog", name="退票 Cancel this ticket?")
        assert await sure.locator("#confirm-text").text_content() == (
            f"太极洞 Taiji Cave {tomorrow} 09:00 · 免票 Free ticket."
        )
        await sure.get_by_role("button", name="确认退票 Yes, cancel it").click()
        await page.get_by_role("status").filter(has_text="已退票").wait_for()
        assert await page.get_by_role("status").text_content() == "已退票 Cancelled"
        await ticket.filter(has_text="已退票 Cancelled").wait_for()
        assert await ticket.get_by_role("button").count() == 0
    assert tab.outside == [] and tab.errors == []


async def test_a_visitor_who_entered_rates_the_spot_and_everyone_reads_its_reviews(
    browser: Browser, tourism: str
) -> None:
    today = dt.datetime.now(COUNTY_TIME).date()
    async with httpx.AsyncClient(base_url=tourism) as sim:
        # 仙山湖's staff publish a slot lasting the whole day, so its gate lets visitors in at any hour
        grant = {"user": "carol", "role": "spot_staff", "unit": "spot:xianshan-lake"}
        assert (await sim.post("/_sim/staff", json=grant)).status_code == 200
        body = {
            "spot": "xianshan-lake",
            "day": today.isoformat(),
            "start": "00:00",
            "end": "23:59",
            "capacity": 9,
        }
        r = await sim.post("/staff/slots", json=body, headers={"x-yima-user": "carol"})
        assert r.status_code == 201, r.text
        for user in ("alice", "grandpa"):  # both enter at the gate (Ankang code); alice pays 50 元 first
            ticket = (
                await sim.post(f"/slots/{r.json()['id']}/reserve", headers={"x-yima-user": user})
            ).json()
            if ticket["payment_id"]:
                assert (await sim.post(f"/_sim/payments/{ticket['payment_id']}/confirm")).status_code == 200
            scan = {"scene_kind": "scenic", "user": user, "unit": "spot:xianshan-lake"}
            assert (await sim.post("/_sim/scan", json=scan)).json()["lines"][0] == "请入园 Welcome"
        review = {"stars": 2, "text": "排队太久 A long queue"}
        r = await sim.post("/spots/xianshan-lake/reviews", json=review, headers={"x-yima-user": "alice"})
        assert r.status_code == 201, r.text
        # grandpa also holds a ticket of tomorrow at 天荒坪, not used yet: nothing to review there
        tomorrow = (today + dt.timedelta(days=1)).isoformat()
        r = await sim.post(f"/slots/tianhuangping.{tomorrow}.09/reserve", headers=GRANDPA)
        assert r.status_code == 201, r.text

    async with opened(browser, _server(tourism), "/") as tab:
        page = tab.page.frame_locator("iframe")
        visited = (
            page.locator("#tickets li").filter(has_text="仙山湖 Xianshan Lake").filter(has_text="已入园")
        )
        await visited.wait_for()
        unused = page.locator("#tickets li").filter(has_text="天荒坪 Tianhuangping")
        assert await unused.get_by_role("button", name="评价 Review").count() == 0
        assert await unused.get_by_role("button", name="退票 Cancel").count() == 1

        # everyone reads the chosen spot's reviews and average: no name, the stars, the day and the text
        await page.get_by_label("景区 Spot").select_option("xianshan-lake")
        await page.locator('#reviews[data-for="xianshan-lake"] li').first.wait_for()
        assert (
            await page.locator("#rating").text_content()
            == "仙山湖 Xianshan Lake: 平均 average ★2 · 1 条评价 reviews"
        )
        assert await page.locator("#reviews li").all_text_contents() == [
            f"★2/5 · {today.isoformat()} · 排队太久 A long queue"
        ]

        # grandpa entered: he rates it from his ticket, in a form whose heading takes the focus
        form = page.get_by_role("region", name="写评价 Review 仙山湖 Xianshan Lake")
        assert not await form.is_visible()
        await visited.get_by_role("button", name="评价 Review").click()
        await form.wait_for()
        title = page.get_by_role("heading", name="写评价 Review 仙山湖 Xianshan Lake")
        assert await title.evaluate("h => document.activeElement === h")
        await form.get_by_role("button", name="提交评价 Submit review").click()  # no stars chosen yet
        await page.get_by_role("status").filter(has_text="请选择评分").wait_for()
        assert await form.is_visible()
        await form.get_by_role("radio", name="5 星 stars").check()
        await form.get_by_role("textbox", name="评价 Your review").fill("竹林清幽 Quiet bamboo groves")
        await form.get_by_role("button", name="提交评价 Submit review").click()
        await page.get_by_role("status").filter(has_text="已评价").wait_for()
        assert await page.get_by_role("status").text_content() == "已评价 Reviewed · ★5"
        assert not await form.is_visible()
        opener = visited.get_by_role("button", name="评价 Review")
        assert await opener.evaluate("b => document.activeElement === b")  # the focus back where she was
        await page.locator("#rating").filter(has_text="★3.5").wait_for()
        assert (
            await page.locator("#rating").text_content()
            == "仙山湖 Xianshan Lake: 平均 average ★3.5 · 2 条评价 reviews"
        )
        assert sorted(await page.locator("#reviews li").all_text_contents()) == [
            f"★2/5 · {today.isoformat()} · 排队太久 A long queue",
            f"★5/5 · {today.isoformat()} · 竹林清幽 Quiet bamboo groves",
        ]
        option = page.get_by_label("景区 Spot").locator('option[value="xianshan-lake"]')
        assert await option.text_content() == "仙山湖 Xianshan Lake · 50 元 ★3.5"

        # another spot's reviews, read by choosing it: none yet
        await page.get_by_label("景区 Spot").select_option("shanjuan-cave")
        await page.locator('#reviews[data-for="shanjuan-cave"]').wait_for(state="attached")
        assert await page.locator("#rating").text_content() == "善卷洞 Shanjuan Cave: 暂无评价 no reviews yet"
        assert await page.locator("#reviews li").count() == 0
    assert tab.outside == [] and tab.errors == []
