"""The medical visits app's page (miniapps/medical/ui) in real Chromium, in `yima-sdk dev`'s simulated shell as
fixture resident grandpa (born 1948): the demo data its seed job wrote, a session booked free of charge (65 or
more, by the birth date he shares when the shell asks), then cancelled; his e-prescription shown by the shell as
its pass's QR code (yima.showPass)."""

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
from tests.browser.test_sdk_dev_page import _server, sdk_dev_server
from tests.e2e._real import eventually, private_folder

MEDICAL = Path(__file__).resolve().parents[2] / "miniapps" / "medical"
GRANDPA = {"x-yima-user": "grandpa"}


@pytest.fixture(scope="module")
def medical() -> Iterator[str]:
    with private_folder("yima-medical-page-") as folder:
        app = shutil.copytree(
            MEDICAL, folder / "medical", ignore=shutil.ignore_patterns("tests", "__pycache__")
        )
        with sdk_dev_server(app, "grandpa") as url:
            # the seed job runs within a second of the start
            eventually(
                lambda: httpx.get(f"{url}/institutions", headers=GRANDPA).json()["institutions"], limit_s=30
            )
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
        await page.locator(f'#sessions[data-for="guangde-people.internal {tomorrow}"]').wait_for(
            state="attached"
        )
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


async def test_a_doctor_sees_the_clinic_screen_and_calls_the_next_patient(
    browser: Browser, medical: str
) -> None:
    today = dt.datetime.now(COUNTY_TIME).date().isoformat()
    half = "am" if dt.datetime.now(COUNTY_TIME).hour < 12 else "pm"
    async with httpx.AsyncClient(base_url=medical) as sim:
        booked = await sim.post(f"/sessions/dr-sun.{today}.{half}/book", headers={"x-yima-user": "alice"})
        assert booked.status_code == 201, booked.text
        scan = {"scene_kind": "clinic", "user": "alice", "unit": "institution:guangde-people"}
        assert "前面 0 人 0 ahead" in (await sim.post("/_sim/scan", json=scan)).json()["lines"]
        grant = {"user": "grandpa", "role": "doctor", "unit": "institution:guangde-people"}
        assert (await sim.post("/_sim/staff", json=grant)).status_code == 200
    async with opened(browser, _server(medical), "/") as tab:
        page = tab.page.frame_locator("iframe")
        row = page.locator("#clinic-sessions li").filter(has_text=f"{half} 孙亮 Sun Liang")
        await row.filter(has_text="等候 waiting 1").wait_for()
        await row.get_by_role("button", name="叫号 Call next").click()
        await page.get_by_role("status").filter(has_text="请 No. 1 就诊").wait_for()
        await row.filter(has_text="正在叫号 calling 1 · 等候 waiting 0").wait_for()
    assert tab.outside == [] and tab.errors == []


async def test_the_page_lists_open_bookings_with_the_place_in_the_queue_in_one_request(
    browser: Browser, medical: str
) -> None:
    today = dt.datetime.now(COUNTY_TIME).date()
    half = "am" if dt.datetime.now(COUNTY_TIME).hour < 12 else "pm"
    tcm = "institution:guangde-tcm"
    async with httpx.AsyncClient(base_url=medical) as sim:
        for who in ("alice", "grandpa"):  # alice checks in first: one ahead of grandpa
            booked = await sim.post(f"/sessions/dr-wu.{today}.{half}/book", headers={"x-yima-user": who})
            assert booked.status_code == 201, booked.text
            scan = {"scene_kind": "clinic", "user": who, "unit": tcm}
            assert (await sim.post("/_sim/scan", json=scan)).status_code == 200
        later = f"/sessions/dr-chen.{today + dt.timedelta(days=2)}.am/book"
        assert (await sim.post(later, headers=GRANDPA)).status_code == 201
        for unit in ("institution:guangde-people", tcm):
            grant = {"user": "grandpa", "role": "doctor", "unit": unit}
            assert (await sim.post("/_sim/staff", json=grant)).status_code == 200
    async with opened(browser, _server(medical), "/") as tab:
        page = tab.page.frame_locator("iframe")
        await page.locator("#bookings li").filter(has_text=f"{half} dr-wu No. 2 · 前面 1 人 ahead").wait_for()
        later_row = page.locator("#bookings li").filter(has_text=f"{today + dt.timedelta(days=2)} am dr-chen")
        await later_row.get_by_role("button", name="取消 Cancel").wait_for()
        screen = page.locator("#clinic-sessions li").filter(has_text=f"{half} 吴芳 Wu Fang")
        await screen.filter(has_text="等候 waiting 2").wait_for()
    # one request for the list (again every 15 s), one per institution for the clinic screens: none per
    # booking or per session
    lists = [r for r in tab.requests if "/bookings" in r]
    screens = [r for r in tab.requests if "/screen" in r]
    assert lists and all(r.startswith("GET ") and "/bookings?open=1" in r for r in lists), lists
    assert screens and all("/screens?institution=guangde-" in r for r in screens), screens
    assert tab.outside == [] and tab.errors == []


async def test_the_waiting_room_screen_shows_the_numbers_called_and_next_and_no_one_by_name(
    browser: Browser, medical: str
) -> None:
    today = dt.datetime.now(COUNTY_TIME).date().isoformat()
    half = "am" if dt.datetime.now(COUNTY_TIME).hour < 12 else "pm"
    session = f"dr-he.{today}.{half}"  # at a township centre, where no other test books today
    taozhou = "institution:taozhou"
    async with httpx.AsyncClient(base_url=medical) as sim:
        numbers = []
        for who in ("alice", "grandpa"):  # both check in; the doctor calls the first
            booked = await sim.post(f"/sessions/{session}/book", headers={"x-yima-user": who})
            assert booked.status_code == 201, booked.text
            numbers.append(booked.json()["number"])
            scan = {"scene_kind": "clinic", "user": who, "unit": taozhou}
            assert (await sim.post("/_sim/scan", json=scan)).status_code == 200
        grant = {"user": "grandpa", "role": "doctor", "unit": taozhou}
        assert (await sim.post("/_sim/staff", json=grant)).status_code == 200
        called = await sim.post(f"/doctor/sessions/{session}/next", headers=GRANDPA)
        assert called.json()["number"] == numbers[0], called.text
    async with opened(browser, _server(medical), "/") as tab:
        page = tab.page.frame_locator("iframe")
        await page.get_by_role("link", name="候诊大屏 Waiting-room screen · 桃州镇卫生院").click()
        await page.get_by_role("heading", name="候诊 Waiting room · 桃州镇卫生院").wait_for()
        row = page.locator("#screens li").filter(has_text=f"{half} 何平 He Ping")
        await row.filter(has_text=f"正在叫号 Now calling No. {numbers[0]}").wait_for()
        await row.filter(has_text=f"下一位 Next {numbers[1]} · 等候 waiting 1").wait_for()
        shown = await page.locator("#screens").text_content()
        assert shown is not None
        assert not any(name in shown for name in ("alice", "grandpa", "李*", "王*", "u_")), shown
        frame = tab.page.frames[-1]
        assert "/ui/screen.html?institution=taozhou" in frame.url, frame.url
    assert tab.outside == [] and tab.errors == []


async def test_a_resident_sees_his_e_prescription_and_shows_its_pass(browser: Browser, medical: str) -> None:
    today = dt.datetime.now(COUNTY_TIME).date().isoformat()
    half = "am" if dt.datetime.now(COUNTY_TIME).hour < 12 else "pm"
    session = f"dr-xu.{today}.{half}"  # at a township centre where no other test books today
    shijie = "institution:shijie"
    alice = {"x-yima-user": "alice"}
    async with httpx.AsyncClient(base_url=medical) as sim:
        booked = await sim.post(f"/sessions/{session}/book", headers=GRANDPA)
        assert booked.status_code == 201, booked.text
        scan = {"scene_kind": "clinic", "user": "grandpa", "unit": shijie}
        assert (await sim.post("/_sim/scan", json=scan)).status_code == 200
        grant = {"user": "alice", "role": "doctor", "unit": shijie}
        assert (await sim.post("/_sim/staff", json=grant)).status_code == 200
        assert (await sim.post(f"/doctor/sessions/{session}/next", headers=alice)).status_code == 200
        items = {"items": [{"drug": "amoxicillin", "boxes": 2}]}
        finished = await sim.post(f"/doctor/bookings/{booked.json()['id']}/finish", json=items, headers=alice)
        payload = finished.json()["prescription"]["payload"]
    async with opened(browser, _server(medical), "/") as tab:
        page = tab.page.frame_locator("iframe")
        row = page.locator("#prescriptions li").filter(
            has_text=f"{today} amoxicillin x2 · 有效至 valid until"
        )
        # the shell checks the pass is this app's and grandpa's and draws it: the QR read back is his pass
        await row.get_by_role("button", name="出示 Show").click()
        picture = tab.page.get_by_role("img", name="the pass as a QR code")
        await picture.evaluate("img => img.decode()")  # drawn, not just in the page
        shown = Image.open(io.BytesIO(await picture.screenshot())).convert("L")
        found = zxingcpp.read_barcodes(shown, formats=zxingcpp.BarcodeFormat.QRCode)
        assert [f.text for f in found] == [payload]
        # Four days on the pass (valid 3 days) has expired: the shell refuses it, the page says so and drops it.
        # The simulator's clock moves for the rest of the module: this stays the file's last test.
        async with httpx.AsyncClient(base_url=medical) as sim:
            assert (await sim.post("/_sim/advance", json={"days": 4})).status_code == 200
        await row.get_by_role("button", name="出示 Show").click()
        refused = "无法出示 cannot show the prescription: 已过期或已作废 expired or revoked"
        await page.get_by_role("status").filter(has_text=refused).wait_for()
        await row.wait_for(state="detached")
    # the refused pass, and nothing else, failed
    assert tab.outside == [] and tab.errors == [
        "Failed to load resource: the server responded with a status of 422 (Status)"
    ]
