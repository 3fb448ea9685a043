"""The scaffold's page in `yima-sdk dev`, in real Chromium: `yima-sdk new` writes ui/index.html and ui/app.js,
`yima-sdk dev` serves them in its simulated shell (the same yima.js and miniapp-host.js as the core), and a
developer sees the page greet the fixture resident, ask for consent, and have a payment confirmed."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import httpx
import pytest
from playwright.async_api import Browser, Dialog

from tests.browser.conftest import opened
from tests.e2e._real import RealServer

YIMA_SDK = Path(sys.executable).parent / "yima-sdk"


DOC = Path(__file__).resolve().parents[2] / "docs" / "sdk.md"


def scaffold(root: Path, app_id: str) -> Path:
    new = subprocess.run(
        [YIMA_SDK, "new", "visits", "--id", app_id], cwd=root, capture_output=True, text=True
    )
    assert new.returncode == 0, new.stderr
    return root / "visits"


@contextlib.contextmanager
def sdk_dev_server(folder: Path, user: str) -> Iterator[str]:
    """`yima-sdk dev` on a free port, as a developer starts it in the app's folder."""
    proc = subprocess.Popen(
        [YIMA_SDK, "dev", "--port", "0", "--payment-confirmation", "manual", "--user", user],
        cwd=folder,
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


@pytest.fixture(scope="module")
def sdk_dev(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with sdk_dev_server(
        scaffold(tmp_path_factory.mktemp("sdk-dev"), "cn.example.pagevisits"), "alice"
    ) as url:
        yield url


def _server(url: str) -> RealServer:
    return cast(RealServer, type("Sim", (), {"url": url}))


async def _accepting(tab_page: Any, asked: list[str]) -> None:
    async def answer(dialog: Dialog) -> None:
        asked.append(dialog.message)
        await dialog.accept()

    tab_page.on("dialog", answer)


async def test_the_scaffold_page_runs_in_the_simulated_shell(browser: Browser, sdk_dev: str) -> None:
    async with opened(browser, _server(sdk_dev), "/") as tab:
        asked: list[str] = []
        await _accepting(tab.page, asked)
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


def test_the_core_serves_the_sdks_page_scripts_byte_for_byte(web: RealServer) -> None:
    from importlib import resources

    shipped = resources.files("yima_sdk") / "web" / "shared"
    for name in ("yima.js", "miniapp-host.js"):
        served = httpx.get(f"{web.url}/static/{name}", headers={"accept-encoding": "identity"})
        assert served.status_code == 200 and served.headers["content-type"].startswith("text/javascript")
        assert served.content == (shipped / name).read_bytes(), name
        assert "script-src 'self'" in served.headers["content-security-policy"]


def guide_app(root: Path) -> Path:
    """A scaffold whose page is the guide's example (docs/sdk.md, "A page")."""
    blocks = re.findall(
        r"```(?:html|js)\n(?:<!-- |// )page-guide/([\w/.]+)(?: -->)?\n(.*?)```", DOC.read_text(), re.S
    )
    files = dict(blocks)
    assert set(files) == {"ui/index.html", "ui/app.js"}
    folder = scaffold(root, "cn.example.pageguide")
    for name, text in files.items():
        (folder / name).write_text(text)
    root.chmod(0o755)  # as root the simulated app runs under its own uid and must read its folder
    return folder


async def test_the_guides_page_example_runs(browser: Browser, tmp_path: Path) -> None:
    folder = guide_app(tmp_path)
    with sdk_dev_server(folder, "grandpa") as url:
        async with opened(browser, _server(url), "/") as tab:
            asked: list[str] = []
            await _accepting(tab.page, asked)
            page = tab.page.frame_locator("iframe")
            await page.locator("#greeting").filter(has_text="你好 u_").wait_for(timeout=30_000)
            await page.get_by_role("button", name="Book a visit").click()
            await page.get_by_role("status").filter(has_text="No. 1").wait_for()
            assert await page.get_by_role("status").text_content() == "Free visit, No. 1"  # born 1948
            assert [m.split("?")[0] for m in asked] == ["Allow this app to read birth_date"]
        assert tab.outside == [] and tab.errors == []
