"""The scaffold's page in `yima-sdk dev`, in real Chromium: `yima-sdk new` writes ui/index.html and ui/app.js,
`yima-sdk dev` serves them in its simulated shell (the same yima.js and miniapp-host.js as the core), and a
developer sees the page greet the fixture resident, ask for consent, and have a payment confirmed."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import cast

import pytest
from playwright.async_api import Browser, Dialog

from tests.browser.conftest import opened
from tests.e2e._real import RealServer

YIMA_SDK = Path(sys.executable).parent / "yima-sdk"
STATIC = Path(__file__).resolve().parents[2] / "server" / "web" / "static"


@pytest.fixture(scope="module")
def sdk_dev(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    root = tmp_path_factory.mktemp("sdk-dev")
    new = subprocess.run(
        [YIMA_SDK, "new", "visits", "--id", "cn.example.pagevisits"], cwd=root, capture_output=True, text=True
    )
    assert new.returncode == 0, new.stderr
    proc = subprocess.Popen(
        [YIMA_SDK, "dev", "--port", "0", "--payment-confirmation", "manual", "--user", "alice"],
        cwd=root / "visits",
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={k: v for k, v in os.environ.items() if not k.startswith("YIMA_")},
    )
    try:
        assert proc.stdout is not None
        url = None
        for line in proc.stdout:
            if line.startswith("serving on"):
                found = re.search(r"http://127\.0\.0\.1:\d+", line)
                url = found.group(0) if found else None
                break
        assert url, "yima-sdk dev printed no address"
        yield url
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=10)


async def test_the_scaffold_page_runs_in_the_simulated_shell(browser: Browser, sdk_dev: str) -> None:
    server = cast(RealServer, type("Sim", (), {"url": sdk_dev}))
    async with opened(browser, server, "/") as tab:
        asked: list[str] = []

        async def answer(dialog: Dialog) -> None:
            asked.append(dialog.message)
            await dialog.accept()

        tab.page.on("dialog", answer)
        assert await tab.page.locator("iframe").get_attribute("sandbox") == "allow-scripts"
        page = tab.page.frame_locator("iframe")
        await page.locator("#hello").filter(has_text="你好 u_").wait_for(timeout=30_000)
        await page.get_by_role("button", name="Book today").click()
        await page.locator("#booking").filter(has_text="succeeded").wait_for()
        assert await page.locator("#booking").text_content() == "No. 1 · succeeded"
        assert len(asked) == 2, asked
        assert asked[0].startswith("Allow this app to read birth_date?") and asked[1].startswith(
            "Pay 5.00 yuan"
        )
        await page.get_by_role("button", name="Show my code").click()
        await tab.page.get_by_role("status").filter(has_text="alice's code").wait_for()
    assert tab.outside == [] and tab.errors == []


def test_the_sdk_ships_the_scripts_the_core_serves() -> None:
    from importlib import resources

    shipped = resources.files("yima_sdk") / "web"
    for name in ("yima.js", "miniapp-host.js"):
        assert (shipped / name).read_bytes() == (STATIC / name).read_bytes(), (
            f"sdk/yima_sdk/web/{name} drifted"
        )
