"""/terminal/ in real Chromium checks mini-app passes offline, as the terminal SDK does: a ticket issued by the real
core (`credentials.issue_pass` of an app released on `yima dev`, through the real sandbox), shown as a QR image and
read back, is let in offline with the lines a gate keeper needs; a cancelled ticket's pass (`credentials.revoke_pass`
put its number on the revocation list the page synced) and a pass with a forged signature are refused offline. The
three records wait in the page and, the line back, go up with its other offline scans: the server decides them again
and the ticket app hears the one it let in."""

from __future__ import annotations

import io
import secrets
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest
import qrcode
import qrcode.constants
import zxingcpp
from PIL import Image
from playwright.async_api import Browser, expect

from tests.browser.conftest import opened
from tests.e2e._real import RealServer, eventually, private_folder, release_app, sign_in, verified_resident

MANIFEST = """
id = "{app_id}"
name = "Gate tickets"
version = "1.0.0"
entry = "app:app"
capabilities = ["user", "credentials", "storage", "log"]
scenes = ["scenic"]
"""
SOURCE = '''
"""Tickets as passes; the gate's scans of them, counted."""

import time

from yima_sdk import App, Context, Request, ScanEvent

app = App()


@app.post("/tickets")
async def buy(ctx: Context, request: Request) -> dict:
    issued = await ctx.credentials.issue_pass("ticket", {"gate": "east"}, int(time.time()) + 3600)
    return {"id": issued.id, "payload": issued.payload}


@app.post("/tickets/{pass_id}/cancel")
async def cancel(ctx: Context, request: Request) -> dict:
    return {"revoked": await ctx.credentials.revoke_pass(request.path_params["pass_id"])}


@app.get("/entries/{pass_id}")
async def entries(ctx: Context, request: Request) -> dict:
    held = await ctx.storage.get_document("entry." + request.path_params["pass_id"])
    return {"entries": held.value if held else []}


@app.on_scan("scenic")
async def gate(ctx: Context, event: ScanEvent) -> dict:
    scanned = event.data.app_pass
    if scanned is None:
        return {"lines": ["no ticket"], "admit": False}
    await ctx.storage.put("entry." + scanned.id, [event.data.mode, event.data.scan_id])
    return {"lines": ["welcome"], "admit": True}
'''


@dataclass
class Gate:
    app_id: str
    scene: str
    operator: httpx.Client


@pytest.fixture(scope="module")
def gate(web: RealServer) -> Iterator[Gate]:
    """The ticket app released on `yima dev` and bound to a scenic scene the page's terminal will serve."""
    with private_folder("yima-pass-app-") as folder:
        app_id = f"test.p{secrets.token_hex(4)}.tickets"
        app = folder / "tickets"
        app.mkdir()
        (app / "miniapp.toml").write_text(MANIFEST.replace("{app_id}", app_id))
        (app / "app.py").write_text(SOURCE)
        operator = sign_in(web, role="operator")
        release_app(web, app, sign_in(web, role="developer"), operator)
        scene = f"gate-{secrets.token_hex(3)}"
        r = operator.put(f"/v1/admin/miniapps/scenes/scenic/{scene}", json={"app_id": app_id})
        assert r.status_code == 200, r.text
        yield Gate(app_id, scene, operator)


def shown(payload: str) -> str:
    """What a camera reads off the pass's QR code: rendered as a PNG (byte mode, error correction M), decoded."""
    qr = qrcode.QRCode(error_correction=qrcode.constants.ERROR_CORRECT_M, box_size=4)
    qr.add_data(payload)
    png = io.BytesIO()
    qr.make_image().save(png)
    (found,) = zxingcpp.read_barcodes(
        Image.open(io.BytesIO(png.getvalue())), formats=zxingcpp.BarcodeFormat.QRCode
    )
    return str(found.text)


async def test_the_page_admits_a_ticket_offline_and_refuses_a_cancelled_or_forged_one(
    web: RealServer, browser: Browser, gate: Gate
) -> None:
    visitor = verified_resident(web)
    api = f"/v1/miniapps/{gate.app_id}/api"

    def bought() -> dict[str, str]:
        r = visitor.post(f"{api}/tickets")
        assert r.status_code == 200, r.text
        return dict(r.json())

    ticket = eventually(bought)  # the app's workers may still be starting
    cancelled = bought()
    r = visitor.post(f"{api}/tickets/{cancelled['id']}/cancel")
    assert r.status_code == 200 and r.json() == {"revoked": True}, r.text
    good, revoked = shown(ticket["payload"]), shown(cancelled["payload"])
    assert good == ticket["payload"] and good.startswith("YP1.")
    forged = good[:-4] + ("AAAA" if not good.endswith("AAAA") else "BBBB")
    number = ticket["id"].removeprefix("pass_")

    r = gate.operator.post(
        "/v1/admin/terminal-enrolments", json={"name": "东门闸机", "kind": "scenic", "scene": gate.scene}
    )
    assert r.status_code == 201, r.text
    async with opened(browser, web, "/terminal/") as tab:
        page = tab.page
        await page.get_by_label("登记码").fill(r.json()["code"])
        await page.get_by_role("button", name="登记").click()
        await expect(page.locator("#sync-state")).to_contain_text(
            "信任列表第"
        )  # lists synced after the cancel
        # the enrolment named our pass issuer: passes verify with its pass keys only, whatever else the list holds
        held = 'async () => (await (await import("/terminal/store.js")).getState("identity")).passIssuer'
        assert await page.evaluate(held) == 341822

        await page.context.set_offline(True)
        decision = page.locator("#decision")

        async def scan(payload: str) -> None:
            await page.get_by_label("扫码内容").fill(payload)
            await page.get_by_role("button", name="核验").click()

        await scan(good)
        await expect(decision.locator("#decision-result")).to_have_text("通过")
        await expect(decision).to_contain_text("本机离线核验，待上传")
        lines = decision.locator("#decision-lines li")
        await expect(lines).to_have_count(4)
        await expect(lines.nth(0)).to_have_text(f"凭证 ticket · 编号 {number}")
        await expect(lines.nth(1)).to_have_text(f"签发小程序：{gate.app_id}")
        await expect(lines.nth(2)).to_contain_text("有效至 ")
        await expect(lines.nth(3)).to_have_text("离线放行；上传后由小程序记入")

        await scan(revoked)
        await expect(decision.locator("#decision-result")).to_have_text("拒绝")
        await expect(decision.locator("#decision-reason")).to_have_text("码已被吊销 (credential.revoked)")
        await scan(forged)
        await expect(decision.locator("#decision-result")).to_have_text("拒绝")
        await expect(decision.locator("#decision-reason")).to_have_text("签名无效 (credential.bad_signature)")
        await expect(page.locator("#pending")).to_have_text("待上传记录：3 条")

        await page.context.set_offline(False)  # back on the line: the page uploads what it kept
        await expect(page.locator("#pending")).to_have_text("待上传记录：0 条")
        await expect(page.locator("#records li[data-status=accepted]")).to_have_count(1)
        await expect(page.locator("#records li[data-status=rejected]")).to_have_count(2)
    assert tab.outside == []
    assert [e for e in tab.errors if "ERR_INTERNET_DISCONNECTED" not in e] == []

    # the app heard the ticket the page let in, as an offline scan
    def entered() -> list[str]:
        r = visitor.get(f"{api}/entries/{ticket['id']}")
        assert r.status_code == 200, r.text
        assert r.json()["entries"], "not delivered yet"
        return list(r.json()["entries"])

    assert eventually(entered, limit_s=20)[0] == "offline"
    assert visitor.get(f"{api}/entries/{cancelled['id']}").json() == {"entries": []}
