"""Benchmark: the resident shell's code page in Chromium (Debian's), from navigation to a scannable code, with
4x CPU slowdown and DevTools' network profiles set through the DevTools protocol (CDP), side by side in one run;
a signed-in resident's first visit (no HTTP cache, no service worker) and a repeat visit (a phone that opened
the shell once before: the service worker holds the shell's files, the page its last code).

On a repeat visit the service worker answers the shell's files from its cache and refreshes them behind the
answer (server/web/app/sw.js); those background fetches run outside the page, where the page's network
emulation does not reach, but nothing on the way to the code waits for them. The page's own API calls are
throttled as on a first visit.

.venv/bin/python tests/bench/bench_app_code_page.py [runs]

"Scannable" is the page's own `yima:code-shown` mark: the QR image decoded and put on screen (server/web/app/
code.js); the page's controls are bound before it, so it is also the moment the page answers a tap.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import httpx
from playwright.async_api import Browser, BrowserContext, async_playwright

from tests.bench._harness import print_table
from tests.browser.conftest import CHROMIUM, PHONE
from tests.e2e._real import private_folder, real_server, server_env

# DevTools' presets (front_end/core/sdk/NetworkManager.ts): throughput in bytes/s, latency in ms.
PROFILES = {
    "Slow 3G": {"latency": 2000, "downloadThroughput": 50_000, "uploadThroughput": 50_000},
    "Fast 3G": {"latency": 562.5, "downloadThroughput": 180_000, "uploadThroughput": 84_375},
    "no throttling (loopback)": {"latency": 0, "downloadThroughput": -1, "uploadThroughput": -1},
}
CPU_SLOWDOWN = 4
SHOWN = """new Promise((resolve) => new PerformanceObserver((list, observer) => {
  const [mark] = list.getEntriesByName("yima:code-shown");
  if (mark) { observer.disconnect(); resolve(mark.startTime); }
}).observe({ type: "mark", buffered: true }))"""
"""The page's mark, read through the DevTools protocol (the page's CSP forbids Playwright's string predicates)."""


def session_for(url: str) -> dict[str, Any]:
    """The demo resident's tokens, in the form the shell keeps them (localStorage "yima.app.session")."""
    from server.seed import DEMO_RESIDENT_PHONE  # here: imported first, server.seed meets an import cycle

    with httpx.Client(base_url=url) as http:
        http.post("/v1/auth/otp", json={"phone": DEMO_RESIDENT_PHONE}).raise_for_status()
        code = http.get("/v1/dev/sms-outbox", params={"phone": DEMO_RESIDENT_PHONE}).json()[-1]["code"]
        pair = http.post("/v1/auth/token", json={"phone": DEMO_RESIDENT_PHONE, "code": code}).json()
    return {"access": pair["access_token"], "refresh": pair["refresh_token"], "expiresAt": 9e15}


async def open_code_page(context: BrowserContext, url: str, network: dict[str, Any]) -> tuple[float, int]:
    """Milliseconds from navigation start to the code on screen, and the bytes that crossed the network."""
    page = await context.new_page()
    cdp = await context.new_cdp_session(page)
    await cdp.send("Emulation.setCPUThrottlingRate", {"rate": CPU_SLOWDOWN})
    await cdp.send("Network.enable")
    await cdp.send("Network.emulateNetworkConditions", {"offline": False, **network})
    sizes: dict[str, int] = {}
    cdp.on("Network.loadingFinished", lambda e: sizes.__setitem__(e["requestId"], e["encodedDataLength"]))
    await page.goto(url + "/app/#/code")
    shown: float = await page.evaluate(SHOWN)
    await page.wait_for_load_state("networkidle")
    await cdp.detach()
    await page.close()
    return shown, sum(sizes.values())


async def measure(
    browser: Browser, url: str, session: dict[str, Any], profile: str, runs: int, *, repeat: bool = False
) -> str:
    shown, weight = [], []
    for _ in range(runs):
        context = await browser.new_context(**PHONE)  # a phone that never saw the shell: no cache, no worker
        await context.add_init_script(
            f"if (!localStorage.getItem('yima.app.session')) "
            f"localStorage.setItem('yima.app.session', {json.dumps(json.dumps(session))})"
        )
        if repeat:  # once before, on a good network: the worker installs, the page keeps its code
            page = await context.new_page()
            await page.goto(url + "/app/#/code")
            await page.evaluate(SHOWN)
            await page.evaluate("navigator.serviceWorker.ready.then(() => true)")
            await page.close()
        ms, sent = await open_code_page(context, url, PROFILES[profile])
        shown.append(ms)
        weight.append(sent)
        await context.close()
    return (
        f"{statistics.median(shown):,.0f} ms  ({statistics.median(weight) / 1024:,.1f} KB over the network)"
    )


async def bench(url: str, runs: int) -> None:
    session = session_for(url)
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM)
        try:
            rows = [
                (
                    f"code page, first visit, 4x CPU slowdown (median of {runs})",
                    "navigation -> code on screen",
                )
            ]
            for profile in PROFILES:
                rows.append((f"  {profile}", await measure(browser, url, session, profile, runs)))
            rows.append((f"code page, repeat visit, 4x CPU slowdown (median of {runs})", ""))
            for profile in PROFILES:
                rows.append(
                    (f"  {profile}", await measure(browser, url, session, profile, runs, repeat=True))
                )
            print_table(rows)
        finally:
            await browser.close()


def main() -> None:
    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 5
    with private_folder("yima-bench-shell-") as folder:
        with real_server("dev", env=server_env("", folder / "data", redis=False)) as server:
            asyncio.run(bench(server.url, runs))


if __name__ == "__main__":
    main()
