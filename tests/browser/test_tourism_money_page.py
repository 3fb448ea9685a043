"""The tourism page's money in real Chromium, in `yima-sdk dev`'s simulated shell as fixture resident alice (a
one-card of 100 元, so the routes' demo prices are lowered to fit it): a priced ticket's payment deadline and pay
button (the shell's confirmation sheet), its release when not paid in time, each ticket's entry hours, cancels
confirmed in the page with the refund told, a refund in progress while the one-card service is down, route
orders cancelled or refused once a gate admitted them and reviewed from the spot entered, and refusals in words,
never a bare code."""

from __future__ import annotations

import datetime as dt
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.async_api import Browser, Dialog, FrameLocator
from playwright.async_api import TimeoutError as PlaywrightTimeout
from yima_sdk.cron import COUNTY_TIME

from tests.browser.conftest import opened
from tests.browser.test_sdk_dev_page import _server, sdk_dev_server
from tests.e2e._real import eventually, private_folder

TOURISM = Path(__file__).resolve().parents[2] / "miniapps" / "tourism"
ALICE = {"x-yima-user": "alice"}
REFUSED = "Failed to load resource: the server responded with a status of {} (Status)"


@pytest.fixture(scope="module")
def tourism() -> Iterator[str]:
    with private_folder("yima-tourism-money-") as folder:
        app = shutil.copytree(
            TOURISM, folder / "tourism", ignore=shutil.ignore_patterns("tests", "__pycache__")
        )
        seed = (app / "seed.py").read_text()
        assert "19800" in seed and "13800" in seed
        (app / "seed.py").write_text(seed.replace("19800", "3800").replace("13800", "2800"))
        with sdk_dev_server(app, "alice") as url:
            eventually(lambda: httpx.get(f"{url}/spots", headers=ALICE).json()["spots"], limit_s=30)
            yield url


def answering(page: Any, answers: list[bool], asked: list[str]) -> None:
    """The shell's prompts (consent, payment) answered in turn: True accepts, False declines."""

    async def answer(dialog: Dialog) -> None:
        asked.append(dialog.message)
        await (dialog.accept() if not answers or answers.pop(0) else dialog.dismiss())

    page.on("dialog", answer)


def county_clock(epoch: int) -> str:
    return dt.datetime.fromtimestamp(epoch, COUNTY_TIME).strftime("%H:%M")


async def status_says(page: FrameLocator, text: str) -> str:
    try:
        await page.get_by_role("status").filter(has_text=text).wait_for()
    except PlaywrightTimeout:  # say what the page said instead
        raise AssertionError(await page.get_by_role("status").text_content()) from None
    said = await page.get_by_role("status").text_content() or ""
    assert "tourism." not in said and "payment." not in said, said  # words, not codes
    return said


async def test_a_priced_ticket_is_paid_by_its_deadline_or_released(browser: Browser, tourism: str) -> None:
    tomorrow = (dt.datetime.now(COUNTY_TIME).date() + dt.timedelta(days=1)).isoformat()
    async with opened(browser, _server(tourism), "/") as tab:
        asked: list[str] = []
        answering(tab.page, [False, True, False], asked)  # declines the sheet, pays from the ticket, declines
        page = tab.page.frame_locator("iframe")
        await page.locator("#packages li").first.wait_for()
        await page.get_by_label("景区 Spot").select_option("jishan-bamboo")
        await page.get_by_label("日期 Day").fill(tomorrow)
        await page.get_by_label("人数 People").fill("2")  # a group pays the full price: 2 × 40 元
        await page.locator(f'#slots[data-for="jishan-bamboo {tomorrow}"]').wait_for(state="attached")
        afternoon = page.locator("#slots li").filter(has_text="13:00–16:00")
        await afternoon.get_by_role("button", name="预约 Reserve").click()
        said = await status_says(page, "前付款")
        async with httpx.AsyncClient(base_url=tourism) as sim:
            mine = (await sim.get("/tickets", headers=ALICE)).json()["tickets"]
        due = county_clock(mine[0]["hold_until"])
        assert (
            said
            == f"笄山竹海 Jishan Bamboo Sea 13:00 · 80 元 · 未付款 not paid · 请在 {due} 前付款 Pay by {due}"
        )
        assert asked == ["Pay 80.00 yuan: 门票 笄山竹海 Jishan Bamboo Sea?"]

        ticket = page.locator("#tickets li").filter(has_text=f"{tomorrow} 13:00 笄山竹海")
        await ticket.filter(has_text="Pay by").wait_for()
        assert await ticket.locator(".note").text_content() == (
            f"入园时间 Entry 12:30–16:00 · 80 元 · 请在 {due} 前付款 Pay by {due}"
        )
        await ticket.get_by_role("button", name="付款 Pay 80 元").click()  # the shell's sheet again: paid
        assert await status_says(page, "已付款") == "笄山竹海 Jishan Bamboo Sea 13:00 · 80 元 · 已付款 paid"
        await ticket.filter(has_text="入园时间 Entry 12:30–16:00 · 已付款 paid").wait_for()
        assert await ticket.get_by_role("button", name="付款 Pay 80 元").count() == 0
        assert await ticket.get_by_role("button", name="出示门票 Show ticket").count() == 1

        morning = page.locator("#slots li").filter(has_text="09:00–12:00")
        await morning.get_by_role("button", name="预约 Reserve").click()
        await status_says(page, "笄山竹海 Jishan Bamboo Sea 09:00")
        unpaid = page.locator("#tickets li").filter(has_text=f"{tomorrow} 09:00 笄山竹海")
        await unpaid.filter(has_text="Pay by").wait_for()
        assert len(asked) == 3

        async with httpx.AsyncClient(base_url=tourism) as sim:  # 20 minutes on: the sweep releases it
            assert (await sim.post("/_sim/advance", json={"minutes": 20})).status_code == 200
        await tab.page.reload()
        page = tab.page.frame_locator("iframe")
        await unpaid.filter(has_text="已释放").wait_for()
        assert await unpaid.locator(".note").text_content() == "已释放 Released: not paid in time"
        assert await unpaid.get_by_role("button").count() == 0
        await ticket.filter(has_text="已付款 paid").wait_for()  # paid in time: kept

        # cancelling asks first, in the page, telling the refund; "keep it" keeps it
        await ticket.get_by_role("button", name="退票 Cancel").click()
        dialog = page.get_by_role("dialog", name="退票 Cancel this ticket?")
        await dialog.wait_for()
        assert await dialog.locator("#confirm-text").text_content() == (
            f"笄山竹海 Jishan Bamboo Sea {tomorrow} 13:00 · 将退还 80 元 到一卡通 The 80 yuan paid go back to your one-card."
        )
        keep = dialog.get_by_role("button", name="不退 Keep it")
        assert await keep.evaluate("b => document.activeElement === b")
        await keep.click()
        await dialog.wait_for(state="hidden")
        assert await ticket.get_by_role("button", name="退票 Cancel").evaluate(
            "b => document.activeElement === b"
        )
        await ticket.get_by_role("button", name="退票 Cancel").click()
        await dialog.get_by_role("button", name="确认退票 Yes, cancel it").click()
        assert await status_says(page, "已退票") == "已退票 Cancelled · 已退款 80 元 refunded"
        await ticket.filter(has_text="已退款").wait_for()
        assert await ticket.locator(".note").text_content() == "已退票 Cancelled · 已退款 80 元 refunded"
        assert len(asked) == 3  # no more sheets: the page's own dialog asked
    assert tab.outside == [] and tab.errors == []


async def test_a_refund_in_progress_and_refusals_in_words(browser: Browser, tourism: str) -> None:
    today = dt.datetime.now(COUNTY_TIME).date().isoformat()
    tomorrow = (dt.datetime.now(COUNTY_TIME).date() + dt.timedelta(days=1)).isoformat()
    async with httpx.AsyncClient(base_url=tourism) as sim:
        r = await sim.post(f"/slots/tianmu-lake.{tomorrow}.09/reserve", headers=ALICE)
        assert (await sim.post(f"/_sim/payments/{r.json()['payment_id']}/confirm")).status_code == 200
        # 天荒坪's staff publish a slot of one place, taken by carol, and one of today that has started
        assert (
            await sim.post(
                "/_sim/staff", json={"user": "carol", "role": "spot_staff", "unit": "spot:tianhuangping"}
            )
        ).status_code == 200
        carol = {"x-yima-user": "carol"}
        one = {"spot": "tianhuangping", "day": tomorrow, "start": "17:00", "end": "19:00", "capacity": 1}
        full = await sim.post("/staff/slots", json=one, headers=carol)
        assert full.status_code == 201, full.text
        assert (await sim.post(f"/slots/{full.json()['id']}/reserve", headers=carol)).status_code == 201
        started = {"spot": "tianhuangping", "day": today, "start": "00:00", "end": "23:59", "capacity": 9}
        r = await sim.post("/staff/slots", json=started, headers=carol)
        assert (await sim.post(f"/slots/{r.json()['id']}/reserve", headers=ALICE)).status_code == 201
        assert (await sim.post("/_sim/switches", json={"refund_failure": True})).status_code == 200

    async with opened(browser, _server(tourism), "/") as tab:
        answering(tab.page, [True], [])
        page = tab.page.frame_locator("iframe")
        paid = page.locator("#tickets li").filter(has_text=f"{tomorrow} 09:00 天目湖")
        await paid.get_by_role("button", name="退票 Cancel").click()
        await page.get_by_role("dialog").get_by_role("button", name="确认退票 Yes, cancel it").click()
        assert await status_says(page, "退款处理中") == (
            "退款处理中 Refund in progress: the ticket is cancelled, the money follows"
        )
        await paid.filter(has_text="退款处理中").wait_for()
        assert await paid.locator(".note").text_content() == "退款处理中 Refund in progress"
        assert await paid.get_by_role("button").count() == 0

        # the one-card back, the sweep pays what is owed; the page tells it
        async with httpx.AsyncClient(base_url=tourism) as sim:
            assert (await sim.post("/_sim/switches", json={"refund_failure": False})).status_code == 200
            assert (await sim.post("/_sim/advance", json={"minutes": 5})).status_code == 200
        await tab.page.reload()
        page = tab.page.frame_locator("iframe")
        await paid.filter(has_text="已退款").wait_for()
        assert await paid.locator(".note").text_content() == "已退票 Cancelled · 已退款 90 元 refunded"

        # a slot that started: the ticket stays, and the page says why
        started_ticket = page.locator("#tickets li").filter(has_text=f"{today} 00:00 天荒坪")
        assert (await started_ticket.locator(".note").text_content() or "").startswith(
            "入园时间 Entry 00:00–23:59"
        )
        await started_ticket.get_by_role("button", name="退票 Cancel").click()
        await page.get_by_role("dialog").get_by_role("button", name="确认退票 Yes, cancel it").click()
        assert await status_says(page, "不能退票") == (
            "时段已开始，不能退票 The slot has started: the ticket can no longer be cancelled"
        )
        # a full slot
        await page.get_by_label("景区 Spot").select_option("tianhuangping")
        await page.get_by_label("日期 Day").fill(tomorrow)
        await page.locator(f'#slots[data-for="tianhuangping {tomorrow}"]').wait_for(state="attached")
        evening = page.locator("#slots li").filter(has_text="17:00–19:00")
        await evening.get_by_role("button", name="预约 Reserve").click()  # the shell asks for the birth date
        assert await status_says(page, "名额已满") == (
            "名额已满，请选其他时段 Not enough places left: choose another slot"
        )
    assert tab.outside == [] and tab.errors == [REFUSED.format(409)] * 2  # the two refusals, nothing else


async def test_route_orders_are_cancelled_refused_once_entered_and_reviewed(
    browser: Browser, tourism: str
) -> None:
    async with opened(browser, _server(tourism), "/") as tab:
        answering(tab.page, [True, True], [])  # pays both routes in the shell's sheet
        page = tab.page.frame_locator("iframe")
        for name in ("假日休闲游", "民俗文化游"):
            await (
                page.locator("#packages li")
                .filter(has_text=name)
                .get_by_role("button", name="购买 Buy")
                .click()
            )
            await status_says(page, name)
        holiday = page.locator("#orders li").filter(has_text="假日休闲游")
        folk = page.locator("#orders li").filter(has_text="民俗文化游")
        await folk.filter(has_text="已付款 paid").wait_for()
        assert (
            await page.get_by_role("status").text_content()
            == "民俗文化游 Folk culture route · 28 元 · 已付款 paid"
        )
        assert await folk.locator(".note").text_content() == "28 元 · 已付款 paid"
        assert await folk.get_by_role("button").all_text_contents() == [
            "出示门票 Show ticket",
            "退订 Cancel route",
        ]

        # alice enters 善卷洞 by her Ankang code (her folk route includes it) while the page is open
        async with httpx.AsyncClient(base_url=tourism) as sim:
            scan = {"scene_kind": "scenic", "user": "alice", "unit": "spot:shanjuan-cave"}
            assert (await sim.post("/_sim/scan", json=scan)).json()["lines"][0] == "请入园 Welcome"
        await folk.get_by_role("button", name="退订 Cancel route").click()
        dialog = page.get_by_role("dialog", name="退订线路 Cancel this route?")
        await dialog.get_by_role("button", name="确认退订 Yes, cancel it").click()
        assert await status_says(page, "不能退订") == (
            "该线路已在景区入园使用，不能退订 This route was used at a gate: it cannot be cancelled"
        )
        await folk.filter(has_text="已入园").wait_for()
        assert (
            await folk.locator(".note").text_content()
            == "28 元 · 已付款 paid · 已入园 entered: 善卷洞 Shanjuan Cave"
        )
        assert await folk.get_by_role("button", name="退订 Cancel route").count() == 0

        # she reviews the spot she entered by the route
        await folk.get_by_role("button", name="评价 Review 善卷洞 Shanjuan Cave").click()
        form = page.get_by_role("region", name="写评价 Review 善卷洞 Shanjuan Cave")
        await form.get_by_role("radio", name="4 星 stars").check()
        await form.get_by_role("button", name="提交评价 Submit review").click()
        assert await status_says(page, "已评价") == "已评价 Reviewed · ★4"
        await page.locator("#rating").filter(has_text="★4").wait_for()
        assert (
            await page.locator("#rating").text_content()
            == "善卷洞 Shanjuan Cave: 平均 average ★4 · 1 条评价 reviews"
        )

        # the other route, not used: cancelled with its refund told before and after
        await holiday.get_by_role("button", name="退订 Cancel route").click()
        assert await dialog.locator("#confirm-text").text_content() == (
            f"{await holiday.evaluate('li => li.firstChild.textContent')} · 将退还 38 元 到一卡通 The 38 yuan"
            " paid go back to your one-card."
        )
        await dialog.get_by_role("button", name="确认退订 Yes, cancel it").click()
        assert await status_says(page, "已退订") == "已退订 Cancelled · 已退款 38 元 refunded"
        await holiday.filter(has_text="已退款").wait_for()
        assert await holiday.locator(".note").text_content() == "已退订 Cancelled · 已退款 38 元 refunded"
        assert await holiday.get_by_role("button").count() == 0
    assert tab.outside == [] and tab.errors == [REFUSED.format(409)]  # the refused cancel, nothing else
