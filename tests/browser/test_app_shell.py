"""The resident shell (/app/) in real Chromium against a real `yima dev`, one per module: codes turn over every
10 s (valid 20 s) so a refresh is seen without a minute's wait, and a small errand app (tests/browser/apps/errands)
is released on it. Sign in by SMS code, real name, silent refresh, sign out; the live code read back from the
screen, refreshed before it expires, shown offline with the time it stays valid, and an elder mode; the one-card
topped up through the payment simulator's cashier; scans, health history, inbox, a payment confirmed and consents
granted and withdrawn. Each page is checked with axe-core (no serious or critical violation)."""

from __future__ import annotations

import io
import re
import secrets
import shutil
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import httpx
import pytest
import zxingcpp
from PIL import Image
from playwright.async_api import Browser, Page, expect

from server.seed import DEMO_OPERATOR_PHONE, DEMO_RESIDENT_PHONE
from tests.browser.a11y import serious_violations
from tests.browser.conftest import DESKTOP, opened
from tests.browser.resident import EN, SESSION, session, sign_in
from tests.conftest import random_phone
from tests.credentials.helpers import random_id_number
from tests.e2e._real import (
    RealServer,
    enrol_terminal,
    eventually,
    private_folder,
    real_server,
    scan_code,
    server_env,
)
from tests.e2e._real import sign_in as sign_in_http

REFRESH_S, VALIDITY_S = 10, 20
ERRANDS = Path(__file__).parent / "apps" / "errands"
ERRANDS_ID = "test.shell.errands"


@pytest.fixture(scope="module")
def shell() -> Iterator[RealServer]:
    with private_folder("yima-web-shell-") as folder:
        app = shutil.copytree(ERRANDS, folder / "errands")  # where the sandbox's unprivileged uid can read it
        env = server_env(
            "",
            folder / "data",
            redis=False,
            YIMA_ANKANG_REFRESH_S=str(REFRESH_S),
            YIMA_ANKANG_VALIDITY_S=str(VALIDITY_S),
            YIMA_OTP_PER_PHONE_PER_HOUR="50",  # the demo resident signs in once per test
        )
        with real_server("dev", "--app", str(app), env=env) as server:
            yield server


async def test_sign_in_real_name_silent_refresh_and_sign_out(shell: RealServer, browser: Browser) -> None:
    phone = random_phone()
    async with opened(browser, shell, "/app/") as tab:
        page = tab.page
        await expect(page.get_by_role("heading", name="手机号登录")).to_be_visible()
        await expect(
            page.get_by_role("navigation", name="主导航")
        ).to_be_hidden()  # no tabs before signing in
        assert await serious_violations(page) == []
        await page.get_by_label("手机号").fill("12345")
        await page.get_by_role("button", name="获取验证码").click()
        await expect(page.get_by_role("alert")).to_have_text("请输入 11 位手机号")
        await sign_in(page, shell, phone)

        # A new account has no real name yet: the code page asks for it, then shows the code.
        await expect(page.get_by_role("heading", name="实名认证")).to_be_visible()
        await page.get_by_label("姓名").fill("李小红")
        await page.get_by_label("身份证号").fill("341822199001011231")  # wrong check digit
        await page.get_by_role("button", name="提交认证").click()
        await expect(page.get_by_role("alert")).to_have_text("身份证号不正确")
        await page.get_by_label("身份证号").fill(random_id_number())
        await page.get_by_role("button", name="提交认证").click()
        await expect(page.get_by_role("img", name="安康码二维码，绿码，出示给扫码设备")).to_be_visible()

        # The access token has run out: the next call refreshes the session without asking the resident.
        before = await session(page)
        await page.evaluate(
            f"""const s = JSON.parse(localStorage.getItem('{SESSION}'));
                s.expiresAt = Date.now() - 1000; s.access = 'expired.' + s.access;
                localStorage.setItem('{SESSION}', JSON.stringify(s));"""
        )
        await page.get_by_role("link", name="我的").click()
        await expect(page.get_by_text(f"{phone[:3]}****{phone[-4:]}")).to_be_visible()
        await expect(page.get_by_text("李*")).to_be_visible()
        after = await session(page)
        assert after["refresh"] != before["refresh"] and after["access"] != before["access"]
        assert await serious_violations(page) == []

        # A token the server refuses (401) before its time: refreshed once, and the call made again.
        await page.evaluate(
            f"""const s = JSON.parse(localStorage.getItem('{SESSION}'));
                s.access = 'refused.' + s.access; localStorage.setItem('{SESSION}', JSON.stringify(s));"""
        )
        await page.get_by_role("link", name="扫码记录").click()
        await expect(page.get_by_text("还没有扫码记录")).to_be_visible()
        again = await session(page)
        assert again["refresh"] != after["refresh"] and not str(again["access"]).startswith("refused.")
        after = again
        await page.get_by_role("link", name="我的").click()

        await page.get_by_role("button", name="退出登录").click()
        await expect(page.get_by_role("heading", name="手机号登录")).to_be_visible()
        assert await session(page) == {}
        # Signed out means ended on the server too, not just forgotten by the page.
        async with httpx.AsyncClient(base_url=shell.url) as http:
            refused = await http.post("/v1/auth/refresh", json={"refresh_token": after["refresh"]})
        assert refused.status_code == 401
    assert tab.outside == []
    # Chromium logs every 4xx answer: the code and its picture before the real name (403), the wrong ID number
    # (422), the refused token (401); nothing else went wrong.
    expected = ["403 (Forbidden)", "403 (Forbidden)", "422 (Unprocessable Entity)", "401 (Unauthorized)"]
    assert tab.errors == [
        f"Failed to load resource: the server responded with a status of {s}" for s in expected
    ]


async def test_english_and_desktop(shell: RealServer, browser: Browser) -> None:
    async with opened(browser, shell, "/app/", size=DESKTOP) as tab:
        await tab.page.get_by_role("button", name="English").click()
        await expect(tab.page.get_by_role("heading", name="Sign in with your phone")).to_be_visible()
        assert await tab.page.evaluate("document.documentElement.lang") == "en"
        await tab.page.reload()  # the choice is remembered
        await expect(tab.page.get_by_role("button", name="Sign in")).to_be_visible()
        await sign_in(tab.page, shell, DEMO_RESIDENT_PHONE, EN)
        await expect(tab.page.get_by_text("Green", exact=True)).to_be_visible()
    assert tab.outside == [] and tab.errors == []


async def shown_code(page: Page) -> str:
    """The QR on the screen, read back by a real decoder."""
    picture = Image.open(io.BytesIO(await page.locator("#qr").screenshot())).convert("L")
    found = zxingcpp.read_barcodes(picture, formats=zxingcpp.BarcodeFormat.QRCode)
    assert len(found) == 1, "no readable QR code on the screen"
    return found[0].text


async def issued(server: RealServer, page: Page) -> dict[str, str]:
    """The code the server issues now, asked with the page's own session."""
    token = (await session(page))["access"]
    async with httpx.AsyncClient(base_url=server.url) as http:
        r = await http.get("/v1/me/codes/ankang", headers={"authorization": f"Bearer {token}"})
    assert r.status_code == 200, r.text
    body: dict[str, str] = r.json()
    return body


async def test_code_refreshes_before_expiry_works_offline_and_has_an_elder_mode(
    shell: RealServer, browser: Browser
) -> None:
    async with opened(browser, shell, "/app/") as tab:
        page = tab.page
        await sign_in(page, shell, DEMO_RESIDENT_PHONE)
        qr = page.get_by_role("img", name="安康码二维码，绿码，出示给扫码设备")
        await expect(qr).to_be_visible()
        await expect(page.get_by_text("绿码", exact=True)).to_be_visible()
        await expect(page.get_by_text("秒后自动刷新")).to_be_visible()
        first_src = await qr.get_attribute("src")
        first = await shown_code(page)
        now = await issued(shell, page)
        if now["payload"] != first:  # the period turned between the page's request and ours
            await expect(qr).not_to_have_attribute("src", first_src or "", timeout=REFRESH_S * 1000)
            first_src, first = await qr.get_attribute("src"), await shown_code(page)
            now = await issued(shell, page)
        assert first == now["payload"] and first.startswith("YA:")
        first_expires = datetime.fromisoformat(now["expires_at"]).timestamp()  # one machine, one clock
        assert await serious_violations(page) == []

        # The page asks for a new code after refresh_after, well before the shown one expires.
        await expect(qr).not_to_have_attribute("src", first_src or "", timeout=(REFRESH_S + 5) * 1000)
        assert time.time() < first_expires
        second = await shown_code(page)
        assert second != first and second == (await issued(shell, page))["payload"]

        # Offline (the service worker serves the shell): the last code, and how long a terminal still accepts it.
        await page.evaluate("navigator.serviceWorker.ready.then(() => true)")
        await tab.page.context.set_offline(True)
        await page.reload()
        await expect(qr).to_be_visible()
        notice = page.locator("#offline")
        await expect(notice).to_contain_text("当前离线：此码还可使用")
        seconds = int("".join(ch for ch in await notice.inner_text() if ch.isdigit()))
        assert 0 < seconds <= VALIDITY_S
        # the last code the page received (a later one than `second`, if a period turned on a slow machine)
        kept = await page.evaluate("JSON.parse(localStorage.getItem('yima.app.code')).payload")
        assert await shown_code(page) == kept and kept.startswith("YA:")
        await tab.page.context.set_offline(False)

        # Elder mode: larger type and a larger code, kept across visits, announced as a pressed switch.
        width = (await qr.bounding_box() or {"width": 0})["width"]
        elder = page.get_by_role("button", name="长辈模式")
        await elder.click()
        await expect(elder).to_have_attribute("aria-pressed", "true")
        assert await page.evaluate("getComputedStyle(document.documentElement).fontSize") == "22px"
        assert (await qr.bounding_box() or {"width": 0})["width"] > width
        await page.reload()
        await expect(page.get_by_role("button", name="长辈模式")).to_have_attribute("aria-pressed", "true")
        assert await serious_violations(page) == []
    assert tab.outside == []
    assert [
        e for e in tab.errors if "ERR_INTERNET_DISCONNECTED" not in e
    ] == []  # offline, the page's fetches fail


@pytest.fixture(scope="module")
def errand(shell: RealServer) -> httpx.Client:
    """What happened before the resident opens the shell: a clinic terminal scanned their code, and they
    ordered an errand, which asked for a one-card payment and wrote to their inbox."""
    resident = sign_in_http(shell, DEMO_RESIDENT_PHONE)
    operator = sign_in_http(shell, DEMO_OPERATOR_PHONE)
    terminal = enrol_terminal(shell, operator, "clinic", "clinic")
    assert scan_code(terminal, resident)["result"] == "accept"
    r = resident.post(f"/v1/miniapps/{ERRANDS_ID}/api/orders", json={"key": "parcel-1"})
    assert r.status_code == 201 and r.json()["status"] == "pending_confirmation", r.text
    top_up(resident, 1000)  # enough for an errand or two, whichever test pays first
    return resident


def top_up(resident: httpx.Client, fen: int) -> None:
    """A top-up paid at the payment simulator's cashier, over HTTP, waited for until it is credited."""
    r = resident.post(
        "/v1/me/onecard/topups", json={"amount_fen": fen}, headers={"Idempotency-Key": secrets.token_hex(8)}
    )
    assert r.status_code == 201, r.text
    order = r.json()
    cashier = resident.get(httpx.URL(order["pay_url"]).path).json()
    assert resident.post(httpx.URL(cashier["pay"]).path).status_code == 200
    eventually(lambda: resident.get(f"/v1/me/onecard/topups/{order['order_no']}").json()["credited"])


async def test_onecard_top_up_records_payments_and_consents(
    shell: RealServer, errand: httpx.Client, browser: Browser
) -> None:
    async with opened(browser, shell, "/app/") as tab:
        page = tab.page
        await sign_in(page, shell, DEMO_RESIDENT_PHONE)
        await expect(page.locator("#qr")).to_be_visible()

        # One-card: top up ¥50 through the payment simulator's cashier; the credit shows in balance and statement.
        await page.get_by_role("link", name="一卡通").click()
        balance = page.locator("#balance")
        await expect(balance).to_have_text(re.compile(r"^¥\d+\.\d\d$"))
        before = float((await balance.inner_text()).lstrip("¥"))
        assert await serious_violations(page) == []
        await page.get_by_role("button", name="¥50.00").click()
        await expect(page.get_by_role("heading", name="收银台")).to_be_visible()
        assert await serious_violations(page) == []
        await page.get_by_role("button", name="确认支付 ¥50.00").click()
        await expect(page.get_by_text("充值成功，¥50.00 已到账")).to_be_visible(timeout=15_000)
        await page.get_by_role("link", name="返回一卡通").click()
        await expect(balance).to_have_text(f"¥{before + 50:.2f}")
        await expect(page.locator("#statement")).to_contain_text("+¥50.00")

        # Inbox: the app's message, and its payment waiting for the resident, confirmed here and charged once.
        await page.get_by_role("link", name="消息").click()
        await expect(page.get_by_text("代取快递：确认付款后开始派送")).to_be_visible()
        pending = page.locator("[data-payment]")
        await expect(pending).to_contain_text("代取快递")
        await expect(pending).to_contain_text("¥5.00")
        assert await serious_violations(page) == []
        await pending.get_by_role("button", name="确认付款").click()
        await expect(page.get_by_text("没有待确认的付款")).to_be_visible()
        await page.get_by_role("link", name="一卡通").click()
        await expect(balance).to_have_text(f"¥{before + 45:.2f}")

        # Where my code was scanned, and my health status history.
        await page.get_by_role("link", name="我的").click()
        await page.get_by_role("link", name="扫码记录").click()
        await expect(page.get_by_text("clinic gate")).to_be_visible()
        await expect(page.get_by_text("通过")).to_be_visible()
        assert await serious_violations(page) == []
        await page.goto("/app/#/health")
        await expect(page.get_by_text("绿码").first).to_be_visible()
        await expect(page.get_by_text("demo")).to_be_visible()
        assert await serious_violations(page) == []

        # Consents: the scope with its purpose; granting lets the app read the masked name, withdrawing stops it.
        await page.goto("/app/#/consents")
        scope = page.locator("[data-scope=real_name_masked]")
        await expect(scope).to_contain_text("核对取件人姓名")
        await expect(scope).to_contain_text("尚未决定")
        assert await serious_violations(page) == []
        async with httpx.AsyncClient(base_url=shell.url, headers=errand.headers) as app:
            name = f"/v1/miniapps/{ERRANDS_ID}/api/me/name"
            assert (await app.get(name)).status_code == 403
            await scope.get_by_role("button", name="同意").click()
            await expect(scope).to_contain_text("已同意")
            assert (await app.get(name)).json() == {"name": "王**"}
            await scope.get_by_role("button", name="撤回授权").click()
            await expect(scope).to_contain_text("未授权")
            assert (await app.get(name)).status_code == 403

        await page.get_by_role("link", name="应用").click()
        await expect(page.get_by_role("link", name="跑腿代办")).to_be_visible()
        assert await serious_violations(page) == []
    assert tab.outside == [] and tab.errors == []


async def test_code_page_first_load_weighs_under_150_kb_from_this_origin_only_and_installs(
    shell: RealServer, browser: Browser
) -> None:
    async with opened(browser, shell, "/app/") as tab:
        await sign_in(tab.page, shell, DEMO_RESIDENT_PHONE)
        await expect(tab.page.locator("#qr")).to_be_visible()
        # Everything again, as on a phone that never saw the shell: no HTTP cache, no service worker.
        cdp = await tab.page.context.new_cdp_session(tab.page)
        await cdp.send("Network.enable")
        await cdp.send("Network.setCacheDisabled", {"cacheDisabled": True})
        await cdp.send("Network.setBypassServiceWorker", {"bypass": True})
        sizes: dict[str, int] = {}
        urls: dict[str, str] = {}
        cdp.on("Network.requestWillBeSent", lambda e: urls.__setitem__(e["requestId"], e["request"]["url"]))
        cdp.on("Network.loadingFinished", lambda e: sizes.__setitem__(e["requestId"], e["encodedDataLength"]))
        await tab.page.reload()
        await expect(tab.page.get_by_role("img", name="安康码二维码，绿码，出示给扫码设备")).to_be_visible()
        await tab.page.wait_for_load_state("networkidle")
        # Installable: Chromium finds the manifest, its icons and the service worker acceptable (a test browser's
        # context is incognito, which Chromium names too: that one is the browser's, not the page's).
        installable = await cdp.send("Page.getInstallabilityErrors")
        assert [e["errorId"] for e in installable["installabilityErrors"]] == ["in-incognito"]
        loaded = {urls.get(request, request): size for request, size in sizes.items()}
        assert any(url.endswith("/v1/me/codes/ankang.png") for url in loaded)  # the code itself is counted
        assert sum(loaded.values()) <= 150 * 1024, loaded
    assert tab.outside == [] and tab.errors == []


async def test_an_app_page_in_its_frame_with_consent_and_payment_drawn_by_the_shell(
    shell: RealServer, errand: httpx.Client, browser: Browser
) -> None:
    async with opened(browser, shell, "/app/") as tab:
        page = tab.page
        await sign_in(page, shell, DEMO_RESIDENT_PHONE)
        await expect(page.locator("#qr")).to_be_visible()
        await page.get_by_role("link", name="应用").click()
        await page.get_by_role("link", name="跑腿代办").click()
        frame = page.frame_locator("iframe[title=跑腿代办]")
        await expect(frame.get_by_text("已连接")).to_be_visible()
        assert await page.locator("iframe").get_attribute("sandbox") == "allow-scripts"

        # The app asks for the phone: the shell, not the page, asks the resident, with the purpose.
        await frame.get_by_role("button", name="显示联系电话").click()
        dialog = page.get_by_role("dialog", name="“跑腿代办”申请使用您的信息")
        await expect(dialog).to_contain_text("派送时联系您")
        assert await serious_violations(page) == []
        await dialog.get_by_role("button", name="同意").click()
        await expect(frame.get_by_text("138****8000")).to_be_visible()

        # The app charges the one-card: the shell shows amount and reason; confirmed, the page hears it.
        await frame.get_by_role("button", name="下单代取快递（¥5.00）").click()
        dialog = page.get_by_role("dialog", name="“跑腿代办”请求付款")
        await expect(dialog).to_contain_text("代取快递")
        await expect(dialog).to_contain_text("¥5.00")
        await dialog.get_by_role("button", name="确认付款").click()
        await expect(frame.get_by_text("succeeded")).to_be_visible()

        # The page asks to show the code: the shell shows it.
        await frame.get_by_role("button", name="出示安康码").click()
        await expect(page.locator("#qr")).to_be_visible()
    assert tab.outside == [] and tab.errors == []
