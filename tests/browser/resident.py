"""What a resident does in the shell, for the page tests: sign in by SMS code (read from the dev outbox as the
phone would receive it) and look at the session the page keeps."""

from __future__ import annotations

import json

import httpx
from playwright.async_api import Page, expect

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
    # Under yima dev, on this machine, the page shows the code it sent too: the one in the outbox.
    await expect(page.locator("main")).to_contain_text(outbox[-1]["code"])
    await page.get_by_label(words["code"], exact=True).fill(outbox[-1]["code"])
    await page.get_by_role("button", name=words["submit"]).click()


async def session(page: Page) -> dict[str, object]:
    stored = await page.evaluate(f"localStorage.getItem('{SESSION}')")
    return json.loads(stored) if stored else {}
