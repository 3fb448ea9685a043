"""The resident shell (/app/) in real Chromium against a real `yima dev`: sign in by SMS code, real name, silent
session refresh and sign out; the one-card with a top-up through the payment simulator's cashier; the records
pages. Each page is also checked with axe-core (no serious or critical violation)."""

from __future__ import annotations

import json

import httpx
from playwright.async_api import Browser, Page, expect

from server.seed import DEMO_RESIDENT_PHONE
from tests.browser.a11y import serious_violations
from tests.browser.conftest import DESKTOP, opened
from tests.conftest import random_phone
from tests.credentials.helpers import random_id_number
from tests.e2e._real import RealServer

SESSION = "yima.app.session"


ZH = {"phone": "手机号", "send": "获取验证码", "sent": "验证码已发送", "code": "验证码", "submit": "登录"}
EN = {
    "phone": "Phone number",
    "send": "Send code",
    "sent": "Code sent",
    "code": "SMS code",
    "submit": "Sign in",
}


async def sign_in(page: Page, server: RealServer, phone: str, words: dict[str, str] = ZH) -> None:
    """Type the phone, ask for a code, read it from the dev SMS outbox as the phone would receive it, sign in."""
    await page.get_by_label(words["phone"]).fill(phone)
    await page.get_by_role("button", name=words["send"]).click()
    await expect(page.get_by_text(words["sent"]).first).to_be_visible()
    async with httpx.AsyncClient(base_url=server.url) as http:
        outbox = (await http.get("/v1/dev/sms-outbox", params={"phone": phone})).json()
    await page.get_by_label(words["code"], exact=True).fill(outbox[-1]["code"])
    await page.get_by_role("button", name=words["submit"]).click()


async def session(page: Page) -> dict[str, object]:
    stored = await page.evaluate(f"localStorage.getItem('{SESSION}')")
    return json.loads(stored) if stored else {}


async def test_sign_in_real_name_silent_refresh_and_sign_out(web: RealServer, browser: Browser) -> None:
    phone = random_phone()
    async with opened(browser, web, "/app/") as tab:
        page = tab.page
        await expect(page.get_by_role("heading", name="手机号登录")).to_be_visible()
        assert await serious_violations(page) == []
        await page.get_by_label("手机号").fill("12345")
        await page.get_by_role("button", name="获取验证码").click()
        await expect(page.get_by_role("alert")).to_have_text("请输入 11 位手机号")
        await sign_in(page, web, phone)

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

        await page.get_by_role("button", name="退出登录").click()
        await expect(page.get_by_role("heading", name="手机号登录")).to_be_visible()
        assert await session(page) == {}
        # Signed out means ended on the server too, not just forgotten by the page.
        async with httpx.AsyncClient(base_url=web.url) as http:
            refused = await http.post("/v1/auth/refresh", json={"refresh_token": after["refresh"]})
        assert refused.status_code == 401
    assert tab.outside == []
    # Chromium logs every 4xx answer: the code and its picture before the real name (403), the wrong ID number
    # (422); nothing else went wrong.
    expected = ["403 (Forbidden)", "403 (Forbidden)", "422 (Unprocessable Entity)"]
    assert tab.errors == [
        f"Failed to load resource: the server responded with a status of {s}" for s in expected
    ]


async def test_english_and_desktop(web: RealServer, browser: Browser) -> None:
    async with opened(browser, web, "/app/", size=DESKTOP) as tab:
        await tab.page.get_by_role("button", name="English").click()
        await expect(tab.page.get_by_role("heading", name="Sign in with your phone")).to_be_visible()
        assert await tab.page.evaluate("document.documentElement.lang") == "en"
        await tab.page.reload()  # the choice is remembered
        await expect(tab.page.get_by_role("button", name="Sign in")).to_be_visible()
        await sign_in(tab.page, web, DEMO_RESIDENT_PHONE, EN)
        await expect(tab.page.get_by_text("Green", exact=True)).to_be_visible()
    assert tab.outside == [] and tab.errors == []
