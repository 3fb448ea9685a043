"""/terminal/ in real Chromium: a terminal enrols with an operator's one-time code (its key made and kept in the
browser), scans the demo resident's real code online, then, with the network cut, decides a code offline with
the synced trust list and uploads the record once the network is back, learning the server's verdict."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
import qrcode
from playwright.async_api import Browser, async_playwright, expect

from server.seed import DEMO_OPERATOR_PHONE, DEMO_RESIDENT_PHONE
from tests.browser.a11y import serious_violations
from tests.browser.conftest import CHROMIUM, opened
from tests.e2e._real import RealServer, sign_in, verified_resident


@pytest.fixture(scope="module")
def operator(web: RealServer) -> httpx.Client:
    """The demo operator, signed in once (sign-ins are rate-limited per phone and per address)."""
    return sign_in(web, DEMO_OPERATOR_PHONE)


def enrolment_code(operator: httpx.Client, scene: str) -> str:
    r = operator.post(
        "/v1/admin/terminal-enrolments",
        json={"name": "门诊入口", "kind": "clinic", "scene": scene},
    )
    assert r.status_code == 201, r.text
    return str(r.json()["code"])


def ankang_payload(resident_phone: str | None, web: RealServer) -> str:
    resident = sign_in(web, resident_phone) if resident_phone else verified_resident(web)
    r = resident.get("/v1/me/codes/ankang")
    assert r.status_code == 200, r.text
    return str(r.json()["payload"])


async def test_enrol_scan_online_then_offline_and_upload_on_reconnect(
    web: RealServer, browser: Browser, operator: httpx.Client
) -> None:
    code = enrolment_code(operator, "web-terminal-clinic")
    async with opened(browser, web, "/terminal/") as tab:
        page = tab.page
        await page.get_by_label("登记码").fill(code.lower().replace("-", ""))
        await page.get_by_role("button", name="登记").click()
        await expect(page.locator("#identity")).to_contain_text(
            "已登记: 门诊入口 · 医院诊所 · web-terminal-clinic"
        )
        await expect(page.locator("#sync-state")).to_contain_text("信任列表第")
        key_kept = await page.evaluate(
            """async () => {
                const store = await import("/terminal/store.js");
                const key = (await store.getState("identity")).privateKey;
                return [key.type, key.extractable, key.algorithm.name];
            }"""
        )
        assert key_kept == ["private", False, "Ed25519"]

        # Online: the server decides; the demo resident's name comes masked.
        await page.get_by_label("扫码内容").fill(ankang_payload(DEMO_RESIDENT_PHONE, web))
        await page.get_by_role("button", name="核验").click()
        decision = page.locator("#decision")
        await expect(decision.locator("#decision-result")).to_have_text("通过")
        await expect(decision).to_contain_text("绿码")
        await expect(decision).to_contain_text("王**")
        await expect(decision).to_contain_text("服务器核验")
        assert await serious_violations(page) == []

        # The terminal survives a reload: enrolled, synced, signed in with the key in IndexedDB.
        await page.reload()
        await expect(page.locator("#sync-state")).to_contain_text("信任列表第")

        # Offline: checked here against the synced trust list, stored, uploaded when the line is back.
        await page.context.set_offline(True)
        offline_payload = ankang_payload(None, web)
        await page.get_by_label("扫码内容").fill(offline_payload)
        await page.get_by_role("button", name="核验").click()
        await expect(decision).to_contain_text("本机离线核验，待上传")
        await expect(decision.locator("#decision-result")).to_have_text("通过")
        await expect(page.locator("#network")).to_have_text("离线")
        await expect(page.locator("#pending")).to_have_text("待上传记录：1 条")

        # A forged code is refused offline with the SDK's reason, and recorded too.
        forged = offline_payload[:-3] + ("000" if offline_payload[-3:] != "000" else "111")
        await page.get_by_label("扫码内容").fill(forged)
        await page.get_by_role("button", name="核验").click()
        await expect(decision.locator("#decision-result")).to_have_text("拒绝")
        await expect(decision).to_contain_text("credential.")
        await expect(page.locator("#pending")).to_have_text("待上传记录：2 条")

        await page.context.set_offline(False)
        await expect(page.locator("#pending")).to_have_text("待上传记录：0 条")
        await expect(page.locator("#records li[data-status=accepted]")).to_have_count(1)
        await expect(page.locator("#records li[data-status=rejected]")).to_have_count(1)
        await expect(page.locator("#network")).to_have_text("在线")
        await page.get_by_role("button", name="English").click()  # the page redraws in English
        await expect(decision.locator("#decision-result")).to_have_text("Refused")
        await expect(page.locator("#pending")).to_have_text("Records to upload: 0")
    assert tab.outside == []
    assert [e for e in tab.errors if "ERR_INTERNET_DISCONNECTED" not in e] == []


def y4m_of_qr(payload: str, path: Path) -> None:
    """One grey video frame (YUV 4:2:0) showing `payload` as a QR code, for Chromium's fake camera."""
    qr = qrcode.QRCode(error_correction=qrcode.constants.ERROR_CORRECT_M, border=4)
    qr.add_data(payload)
    matrix = qr.get_matrix()
    width, height, scale = 640, 480, 8
    left, top = (width - len(matrix) * scale) // 2, (height - len(matrix) * scale) // 2
    luma = bytearray(b"\xeb" * (width * height))
    for y, row in enumerate(matrix):
        for x, dark in enumerate(row):
            if dark:
                for dy in range(scale):
                    start = (top + y * scale + dy) * width + left + x * scale
                    luma[start : start + scale] = b"\x10" * scale
    chroma = b"\x80" * (width * height // 4)
    path.write_bytes(
        f"YUV4MPEG2 W{width} H{height} F10:1 Ip A1:1 C420jpeg\n".encode()
        + b"FRAME\n"
        + luma
        + chroma
        + chroma
    )


async def test_the_camera_reads_a_code_and_the_page_decides_it(
    web: RealServer, operator: httpx.Client, tmp_path: Path
) -> None:
    video = tmp_path / "code.y4m"
    y4m_of_qr(ankang_payload(None, web), video)
    code = enrolment_code(operator, "web-terminal-camera")
    async with async_playwright() as playwright:
        camera_browser = await playwright.chromium.launch(
            executable_path=CHROMIUM,
            args=["--use-fake-device-for-media-stream", f"--use-file-for-fake-video-capture={video}"],
        )
        try:
            context = await camera_browser.new_context(
                locale="zh-CN", base_url=web.url, permissions=["camera"]
            )
            page = await context.new_page()
            errors: list[str] = []
            page.on("pageerror", lambda error: errors.append(str(error)))
            await page.goto("/terminal/")
            await page.get_by_label("登记码").fill(code)
            await page.get_by_role("button", name="登记").click()
            await expect(page.locator("#sync-state")).to_contain_text("信任列表第")
            await page.get_by_role("button", name="摄像头扫码").click()
            await expect(page.locator("#decision-result")).to_have_text("通过", timeout=20_000)
            await expect(page.locator("#decision")).to_contain_text("李**")
            assert (await page.get_by_label("扫码内容").input_value()).startswith("YA:")
            await expect(page.locator("#video")).to_be_hidden()  # the camera is released once a code is read
            assert errors == []
        finally:
            await camera_browser.close()


async def test_a_terminal_whose_clock_is_ten_minutes_fast_learns_ours_and_signs_in(
    web: RealServer, browser: Browser, operator: httpx.Client
) -> None:
    code = enrolment_code(operator, "web-terminal-fast-clock")
    async with opened(browser, web, "about:blank") as tab:
        page = tab.page
        await page.clock.set_system_time(datetime.now(UTC) + timedelta(minutes=10))
        await page.goto("/terminal/")
        await page.get_by_label("登记码").fill(code)
        await page.get_by_role("button", name="登记").click()
        # Its first assertion is refused for its time; the signed public time corrects the clock by about -10 min.
        state = page.locator("#sync-state")
        await expect(state).to_contain_text("信任列表第")
        offset_ms = int((await state.text_content() or "").split("时钟偏差 ")[1].split(" ")[0])
        assert -610_000 < offset_ms < -590_000
    assert all("status of 401" in e for e in tab.errors)  # the one refused sign-in, nothing else
