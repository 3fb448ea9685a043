"""The medicine app's page (miniapps/medicine/ui) in real Chromium, in `yima-sdk dev`'s simulated shell as
fixture resident alice: a pharmacy scans her code and a pharmacist sells her a box of ibuprofen; her page lists
the purchase to pay, she pays it (confirming the charge the shell asks about) and it shows as paid."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from playwright.async_api import Browser, Dialog

from tests.browser.conftest import opened
from tests.browser.test_sdk_dev_page import _server, sdk_dev_server
from tests.e2e._real import eventually, private_folder

MEDICINE = Path(__file__).resolve().parents[2] / "miniapps" / "medicine"
TAOZHOU = "pharmacy:taozhou-1"


@pytest.fixture(scope="module")
def medicine() -> Iterator[str]:
    with private_folder("yima-medicine-page-") as folder:
        app = shutil.copytree(
            MEDICINE, folder / "medicine", ignore=shutil.ignore_patterns("tests", "__pycache__")
        )
        with sdk_dev_server(app, "alice") as url:
            # the seed job runs within a second of the start
            eventually(lambda: httpx.get(f"{url}/pharmacies").json()["pharmacies"], limit_s=30)
            sold_to_alice(url)
            yield url


def sold_to_alice(url: str) -> None:
    """Alice opens the app; the pharmacy's terminal scans her code; pharmacist grandpa sells her ibuprofen."""
    assert httpx.get(f"{url}/purchases", headers={"x-yima-user": "alice"}).json()["purchases"] == []
    grant = {"user": "grandpa", "role": "pharmacist", "unit": TAOZHOU}
    assert httpx.post(f"{url}/_sim/staff", json=grant).status_code == 200
    scan = {"scene_kind": "pharmacy", "user": "alice", "unit": TAOZHOU}
    lines = httpx.post(f"{url}/_sim/scan", json=scan).json()["lines"]
    number = int(lines[0].split()[2].rstrip(":"))
    body = {"pharmacy": "taozhou-1", "ticket": number, "key": "page-1", "items": [{"drug": "ibuprofen"}]}
    sold = httpx.post(f"{url}/pharmacist/sales", json=body, headers={"x-yima-user": "grandpa"})
    assert sold.status_code == 201, sold.text


async def test_a_resident_pays_a_purchase_the_pharmacy_made_to_her(browser: Browser, medicine: str) -> None:
    async with opened(browser, _server(medicine), "/") as tab:
        asked: list[str] = []

        async def accept(dialog: Dialog) -> None:
            asked.append(dialog.message)
            await dialog.accept()

        tab.page.on("dialog", accept)
        page = tab.page.frame_locator("iframe")
        bought = page.locator("#purchases li").filter(has_text="布洛芬缓释胶囊 Ibuprofen x1")
        await bought.filter(has_text="18 元 · 待付款 to pay").wait_for()
        await bought.get_by_role("button", name="付款 Pay").click()
        await page.get_by_role("status").filter(has_text="已付款 paid").wait_for()
        await bought.filter(has_text="已付款 paid").wait_for()
        assert await bought.get_by_role("button").count() == 0
        assert len(asked) == 1, asked
    assert tab.outside == [] and tab.errors == []
