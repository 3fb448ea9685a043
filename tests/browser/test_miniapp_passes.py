"""yima.showPass in real Chromium against a real `yima dev` running two small ticket apps
(tests/browser/apps/tickets, and a copy under another id): the page asks the shell to show one of its app's passes,
the core checks it and draws it, the shell shows it full-screen and the QR read back by a real decoder is the
pass. A page that names another app's pass, another resident's, or a forged one gets a refusal and nothing is
shown."""

from __future__ import annotations

import base64
import io
import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import zxingcpp
from PIL import Image
from playwright.async_api import Browser, FrameLocator, Page, expect

from server.seed import DEMO_RESIDENT_PHONE
from tests.browser.a11y import serious_violations
from tests.browser.conftest import opened
from tests.browser.resident import sign_in
from tests.e2e._real import RealServer, private_folder, real_server, server_env
from tests.e2e._real import sign_in as sign_in_http

TICKETS = Path(__file__).parent / "apps" / "tickets"
TICKETS_ID = "test.shell.tickets"
OTHER_ID = "test.shell.other"
REFUSED_STATUS = ("404", "422")


@pytest.fixture(scope="module")
def shell() -> Iterator[RealServer]:
    with private_folder("yima-web-passes-") as folder:
        mine = shutil.copytree(
            TICKETS, folder / "tickets"
        )  # where the sandbox's unprivileged uid can read it
        other = shutil.copytree(TICKETS, folder / "other")
        manifest = other / "miniapp.toml"
        manifest.write_text(
            manifest.read_text().replace(TICKETS_ID, OTHER_ID).replace('name = "门票"', 'name = "别家门票"')
        )
        env = server_env("", folder / "data", redis=False, YIMA_OTP_PER_PHONE_PER_HOUR="50")
        with real_server("dev", "--app", str(mine), "--app", str(other), env=env) as server:
            yield server


def ticket(client: httpx.Client, app_id: str) -> str:
    """A pass `app_id` issued to the client's resident, asked for over HTTP."""
    r = client.post(f"/v1/miniapps/{app_id}/api/tickets")
    assert r.status_code == 201, r.text
    payload: str = r.json()["payload"]
    return payload


def forged(payload: str) -> str:
    """The same pass with its data changed and the signature kept."""
    head, claims, signature = payload.split(".")
    data = json.loads(base64.urlsafe_b64decode(claims + "=" * (-len(claims) % 4)))
    data["d"] = {**data["d"], "forged": True}
    text = base64.urlsafe_b64encode(json.dumps(data, separators=(",", ":")).encode()).rstrip(b"=").decode()
    return f"{head}.{text}.{signature}"


async def tickets_page(page: Page, shell: RealServer) -> FrameLocator:
    await sign_in(page, shell, DEMO_RESIDENT_PHONE)
    await expect(page.locator("#qr")).to_be_visible()
    await page.get_by_role("link", name="应用").click()
    await page.get_by_role("link", name="门票", exact=True).click()
    frame = page.frame_locator("iframe[title=门票]")
    await expect(frame.get_by_text("已连接")).to_be_visible()
    return frame


async def test_a_page_shows_its_own_pass_full_screen_drawn_by_the_shell(
    shell: RealServer, browser: Browser
) -> None:
    async with opened(browser, shell, "/app/") as tab:
        page = tab.page
        frame = await tickets_page(page, shell)
        await frame.get_by_role("button", name="出示我的门票").click()
        dialog = page.get_by_role("dialog", name="“门票”的凭证")
        await expect(dialog).to_be_visible()
        payload = await frame.locator("#out").get_attribute("data-payload")
        assert payload and payload.startswith("YP1.")
        picture = dialog.get_by_role("img", name="凭证二维码")
        await expect(picture).to_be_visible()
        await picture.evaluate("img => img.decode()")  # drawn, not just in the page
        shown = Image.open(io.BytesIO(await picture.screenshot())).convert("L")
        found = zxingcpp.read_barcodes(shown, formats=zxingcpp.BarcodeFormat.QRCode)
        assert [f.text for f in found] == [payload]
        assert await serious_violations(page) == []
        await dialog.get_by_role("button", name="关闭").click()
        await expect(dialog).to_be_hidden()
        await expect(frame.locator("#out")).to_have_text("已关闭")
    assert tab.outside == [] and tab.errors == []


async def test_a_page_cannot_show_another_apps_pass_another_residents_or_a_forged_one(
    shell: RealServer, browser: Browser
) -> None:
    resident = sign_in_http(shell, DEMO_RESIDENT_PHONE)
    neighbour = sign_in_http(shell)
    refused = {
        ticket(resident, OTHER_ID): "pass.not_found",  # the resident's own, but another app's
        ticket(neighbour, TICKETS_ID): "pass.not_found",  # this app's, but someone else's
        forged(ticket(resident, TICKETS_ID)): "pass.invalid",
        "YP1.not-a-pass": "pass.invalid",
    }
    async with opened(browser, shell, "/app/") as tab:
        page = tab.page
        frame = await tickets_page(page, shell)
        for payload, code in refused.items():
            await frame.get_by_label("凭证内容").fill(payload)
            await frame.get_by_role("button", name="出示这张凭证").click()
            await expect(frame.locator("#out")).to_have_text(code)
            await expect(page.get_by_role("dialog")).to_have_count(0)
            await frame.locator("#out").evaluate("out => { out.textContent = '' }")
        # the control: the resident's own pass of this app, typed in the same way, is shown
        await frame.get_by_label("凭证内容").fill(ticket(resident, TICKETS_ID))
        await frame.get_by_role("button", name="出示这张凭证").click()
        await expect(page.get_by_role("dialog", name="“门票”的凭证")).to_be_visible()
    assert tab.outside == []
    assert tab.errors and all(any(f"status of {s}" in e for s in REFUSED_STATUS) for e in tab.errors), (
        tab.errors
    )
