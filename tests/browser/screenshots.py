"""`make screenshots`: the main pages at phone and desktop sizes, written to docs/screenshots/ (shown in the README
and docs/web.md). One real `yima dev` with its demo data, Debian's Chromium, the pages driven as people use them.

    .venv/bin/python -m tests.browser.screenshots [OUT_FOLDER]
"""

from __future__ import annotations

import asyncio
import json
import shutil
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
from playwright.async_api import Browser, Page, async_playwright

from server.seed import DEMO_OPERATOR_PHONE, DEMO_RESIDENT_PHONE
from tests.browser.conftest import CHROMIUM, DESKTOP, PHONE
from tests.e2e._real import RealServer, private_folder, real_server, server_env, sign_in

OUT = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
ERRANDS = Path(__file__).parent / "apps" / "errands"
"""The errand app of the shell's page tests, released on the server so the shell has an app, a page and a payment."""


async def terminal(page: Page, server: RealServer) -> None:
    """The terminal page after it enrolled and scanned the demo resident's code online."""
    operator = sign_in(server, DEMO_OPERATOR_PHONE)
    code = operator.post(
        "/v1/admin/terminal-enrolments",
        json={"name": "广德市人民医院 门诊入口", "kind": "clinic", "scene": "guangde-peoples-hospital"},
    ).json()["code"]
    payload = sign_in(server, DEMO_RESIDENT_PHONE).get("/v1/me/codes/ankang").json()["payload"]
    await page.goto("/terminal/")
    await page.get_by_label("登记码").fill(code)
    await page.get_by_role("button", name="登记").click()
    await page.get_by_text("信任列表第").wait_for()
    await page.get_by_label("扫码内容").fill(payload)
    await page.get_by_role("button", name="核验").click()
    await page.locator("#decision").wait_for()


async def console(page: Page, server: RealServer) -> None:
    """The console's terminal list, signed in as the demo operator (the dev page shows the SMS code)."""
    await page.goto("/console/#/terminals")
    await page.get_by_label("手机号").fill(DEMO_OPERATOR_PHONE)
    await page.get_by_role("button", name="获取验证码").click()
    notice = page.get_by_text("开发环境验证码：")
    await notice.wait_for()
    code = (await notice.text_content() or "").rsplit("：", 1)[-1]
    await page.get_by_label("短信验证码").fill(code)
    await page.get_by_role("button", name="登录").click()
    await page.locator("tr[data-terminal]").first.wait_for()


PAGES: dict[str, Callable[[Page, RealServer], Awaitable[None]]] = {"terminal": terminal, "console": console}


# ---- the resident shell: several pages, each in a phone context (touch, mobile viewport) and a desktop one ----

SHELL_PAGES = [
    ("app-code", "/app/#/code", "#qr[src]"),
    ("app-card", "/app/#/card", "#balance"),
    ("app-inbox", "/app/#/inbox", "#pay-title"),
    ("app-apps", "/app/#/apps", "main h2"),
    ("app-consents", "/app/#/consents", "[data-scope]"),
    ("app-miniapp", "/app/#/app/test.shell.errands", "iframe"),
]


def _session(server: RealServer, phone: str) -> dict[str, Any]:
    """A session in the form the shell keeps it, signed in over HTTP through the dev SMS outbox."""
    with httpx.Client(base_url=server.url) as http:
        http.post("/v1/auth/otp", json={"phone": phone}).raise_for_status()
        code = http.get("/v1/dev/sms-outbox", params={"phone": phone}).json()[-1]["code"]
        pair = http.post("/v1/auth/token", json={"phone": phone, "code": code}).json()
    return {"access": pair["access_token"], "refresh": pair["refresh_token"], "expiresAt": 9e15}


async def resident_shell(browser: Browser, server: RealServer, out: Path) -> list[Path]:
    """Sign-in, code, one-card, inbox (an errand's payment waiting), apps, consents, an app's page, elder mode."""
    resident = sign_in(server, DEMO_RESIDENT_PHONE)
    resident.post("/v1/miniapps/test.shell.errands/api/orders", json={"key": "screenshot"})
    session = json.dumps(json.dumps(_session(server, DEMO_RESIDENT_PHONE)))
    written = []
    for size_name, size in (("phone", PHONE), ("desktop", DESKTOP)):
        context = await browser.new_context(locale="zh-CN", base_url=server.url, **size)

        async def shot(page: Page, name: str, size_name: str = size_name) -> None:
            await page.wait_for_load_state("networkidle")
            path = out / f"{name}-{size_name}.png"
            await page.screenshot(path=str(path))
            written.append(path)

        page = await context.new_page()
        await page.goto("/app/")
        await page.get_by_role("heading", name="手机号登录").wait_for()
        await shot(page, "app-signin")
        await context.add_init_script(f"localStorage.setItem('yima.app.session', {session})")
        page = await context.new_page()
        for name, path, ready in SHELL_PAGES:
            await page.goto(path)
            await page.locator(ready).first.wait_for()
            await shot(page, name)
        await page.goto("/app/#/code")
        await page.get_by_role("button", name="长辈模式").click()
        await page.locator("#qr[src]").wait_for()
        await shot(page, "app-code-elder")
        await context.close()
    return written


async def shoot(server: RealServer, out: Path) -> list[Path]:
    written = []
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM)
        try:
            for name, drive in PAGES.items():
                context = await browser.new_context(locale="zh-CN", base_url=server.url, **DESKTOP)
                page = await context.new_page()
                await drive(page, server)
                for size_name, size in (("desktop", DESKTOP), ("phone", PHONE)):
                    await page.set_viewport_size(size["viewport"])
                    path = out / f"{name}-{size_name}.png"
                    await page.screenshot(path=str(path), full_page=size_name == "phone")
                    written.append(path)
                await context.close()
            written += await resident_shell(browser, server, out)
        finally:
            await browser.close()
    return written


def main() -> None:
    out = Path(sys.argv[1]) if len(sys.argv) > 1 else OUT
    out.mkdir(parents=True, exist_ok=True)
    with private_folder("yima-shots-") as folder:
        app = shutil.copytree(ERRANDS, folder / "errands")  # where the sandbox's unprivileged uid can read it
        env = server_env("", folder / "data", redis=False, YIMA_OTP_PER_PHONE_PER_HOUR="50")
        with real_server("dev", "--app", str(app), env=env) as server:
            for path in asyncio.run(shoot(server, out)):
                print(f"wrote {path}")


if __name__ == "__main__":
    main()
