"""/terminal/ in real Chromium shows the bound mini-app's verdict: a bus terminal page on line 1 of the first-party
bus app (`yima dev` with the first-party apps, on a database of its own) scans, online, the real code of a resident
who never opened 一码乘车 — a valid code the app refuses (`miniapp.admit` false) — and the page says "不通过" in red
with the app's line, announced as every decision is; a rider who uses the app is let on ("通过", the fare)."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from playwright.async_api import Browser, expect

from server.seed import DEMO_OPERATOR_PHONE
from tests.browser.a11y import serious_violations
from tests.browser.conftest import opened
from tests.e2e._real import (
    RealServer,
    eventually,
    fresh_database,
    private_folder,
    real_server,
    server_env,
    sign_in,
    verified_resident,
)

BUS = "gov.guangde.bus"
API = f"/v1/miniapps/{BUS}/api"


@pytest.fixture(scope="module")
def first_party() -> Iterator[RealServer]:
    """`yima dev` with the first-party apps, the bus app's lines seeded."""
    with private_folder("yima-web-bus-") as folder, fresh_database() as dsn:
        env = server_env(dsn, folder / "data", redis=False, YIMA_DEV_FIRST_PARTY="1")
        with real_server("dev", env=env) as server:
            watcher = verified_resident(server)
            eventually(lambda: watcher.get(f"{API}/lines").status_code == 200, limit_s=60)
            yield server


def code_of(rider: httpx.Client) -> str:
    r = rider.get("/v1/me/codes/ankang")
    assert r.status_code == 200, r.text
    return str(r.json()["payload"])


async def test_a_code_the_bus_app_refuses_is_shown_refused_with_its_lines(
    first_party: RealServer, browser: Browser
) -> None:
    operator = sign_in(first_party, DEMO_OPERATOR_PHONE)
    r = operator.post(
        "/v1/admin/terminal-enrolments",
        json={"name": "1路车载机", "kind": "bus", "scene": BUS, "unit": "line:1"},
    )
    assert r.status_code == 201, r.text
    newcomer, rider = verified_resident(first_party), verified_resident(first_party)
    assert rider.get(f"{API}/me").status_code == 200  # the rider opened 一码乘车; the newcomer never did

    async with opened(browser, first_party, "/terminal/") as tab:
        page = tab.page
        await page.get_by_label("登记码").fill(r.json()["code"])
        await page.get_by_role("button", name="登记").click()
        await expect(page.locator("#sync-state")).to_contain_text("信任列表第")
        decision = page.locator("#decision")
        # every decision is read out: the box is a live region
        assert await decision.get_attribute("role") == "status"
        assert await decision.get_attribute("aria-live") == "assertive"

        await page.get_by_label("扫码内容").fill(code_of(newcomer))
        await page.get_by_role("button", name="核验").click()
        await expect(decision).to_contain_text("服务器核验")
        await expect(decision.locator("#decision-result")).to_have_text("不通过")
        await expect(decision).to_have_class("decision rejected")  # red, as a refused code
        await expect(decision.locator("#decision-lines li")).to_have_text(
            ["请先开通一码乘车 Open 一码乘车 once to ride"]
        )
        assert await serious_violations(page) == []
        await page.get_by_role("button", name="English").click()
        await expect(decision.locator("#decision-result")).to_have_text("Not admitted")
        await page.get_by_role("button", name="中文").click()

        await page.get_by_label("扫码内容").fill(code_of(rider))
        await page.get_by_role("button", name="核验").click()
        await expect(decision.locator("#decision-result")).to_have_text("通过")
        await expect(decision).to_have_class("decision green")
        await expect(decision.locator("#decision-lines li")).to_have_text(["1路 ¥2.00"])
    assert tab.outside == [] and tab.errors == []
