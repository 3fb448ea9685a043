"""`make screenshots`: the main pages at phone and desktop sizes, written to docs/screenshots/ (shown in the README
and docs/web.md). One real `yima dev` with its demo data, Debian's Chromium, the pages driven as people use them.

    .venv/bin/python -m tests.browser.screenshots [OUT_FOLDER]
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path

from playwright.async_api import Page, async_playwright

from server.seed import DEMO_OPERATOR_PHONE, DEMO_RESIDENT_PHONE
from tests.browser.conftest import CHROMIUM, DESKTOP, PHONE
from tests.e2e._real import RealServer, private_folder, real_server, server_env, sign_in

OUT = Path(__file__).resolve().parents[2] / "docs" / "screenshots"


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
        finally:
            await browser.close()
    return written


def main() -> None:
    out = Path(sys.argv[1]) if len(sys.argv) > 1 else OUT
    out.mkdir(parents=True, exist_ok=True)
    with private_folder("yima-shots-") as folder:
        with real_server("dev", env=server_env("", folder / "data", redis=False)) as server:
            for path in asyncio.run(shoot(server, out)):
                print(f"wrote {path}")


if __name__ == "__main__":
    main()
