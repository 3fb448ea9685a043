"""A mini-app's page in real Chromium, in a sandboxed frame opened by /static/miniapp-host.js on a host page of
the server's origin (the shell's part, played by a page routed in by the test): the page calls its app and shows
the answer; consent and payment are asked by the host, never the page; and what a hostile page tries (another
origin, the resident's token in the host's storage or cookies, the server's other routes, another app's API)
is blocked by the browser or refused by the server."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from playwright.async_api import Browser, BrowserContext, Frame, Route

from server.web.plugin import SECURITY_HEADERS
from tests.browser.conftest import opened
from tests.e2e._real import (
    RealServer,
    eventually,
    private_folder,
    release_app,
    sign_in,
    verified_resident,
)
from tests.platform.conftest import new_app_id, write_probe

PAGE = """<!doctype html>
<html lang="zh-CN"><head><meta charset="utf-8"><title>Probe</title>
<script src="/static/yima.js"></script><script src="app.js" defer></script></head>
<body><p id="me">…</p>
<button id="age" type="button">age</button><p id="age-out"></p>
<button id="pay" type="button">pay</button><p id="pay-out"></p></body></html>
"""
SCRIPT = """
const show = (id, text) => { document.getElementById(id).textContent = text; };
yima.call("/whoami").then((me) => show("me", me.user_id), (error) => show("me", error.code));
document.getElementById("age").addEventListener("click", async () => {
  if (!(await yima.requestConsent("birth_date"))) return show("age-out", "refused");
  show("age-out", (await yima.call("/age")).birth_date);
});
document.getElementById("pay").addEventListener("click", async () => {
  try {
    const charge = await yima.call("/charge", { method: "POST", body: {} });
    show("pay-out", (await yima.confirmPayment(charge.id)).status);
  } catch (error) {
    show("pay-out", error.code);
  }
});
"""
HOST_PAGE = """<!doctype html>
<html lang="zh-CN"><head><meta charset="utf-8"><title>host</title>
<script type="module" src="/__host__/host.js"></script></head>
<body><div id="apps"></div><p id="shown"></p></body></html>
"""
HOST_SCRIPT = """
import { openMiniapp } from "/static/miniapp-host.js";
const token = await (await fetch("/__host__/token")).text();
localStorage.setItem("yima.app", JSON.stringify({ access: token }));  // where a shell keeps its session
document.cookie = "yima_probe=resident-secret; path=/";
const ask = (text) => new Promise((resolve) => {
  const dialog = document.createElement("div");
  dialog.setAttribute("role", "dialog");
  dialog.textContent = text;
  for (const [label, answer] of [["同意", true], ["拒绝", false]]) {
    const button = document.createElement("button");
    button.textContent = label;
    button.onclick = () => { dialog.remove(); resolve(answer); };
    dialog.append(button);
  }
  document.body.append(dialog);
});
openMiniapp(document.getElementById("apps"), new URLSearchParams(location.search).get("app"), {
  title: "probe",
  getToken: async () => JSON.parse(localStorage.getItem("yima.app")).access,
  onConsent: ({ scope, purpose }) => ask(`consent ${scope}: ${purpose}`),
  onPayment: (payment) => ask(`pay ${payment.amount_fen} ${payment.appId}`),
  onShowCode: async () => { document.getElementById("shown").textContent = "code shown"; },
});
"""


@dataclass
class Shipped:
    app_id: str
    other_id: str
    token: str


@pytest.fixture(scope="module")
def shipped(web: RealServer) -> Iterator[Shipped]:
    """Two released apps on the session's `yima dev`: one with the page, one without; a verified resident."""
    developer, operator = sign_in(web, role="developer"), sign_in(web, role="operator")
    with private_folder("yima-ui-") as folder:
        app = write_probe(folder, new_app_id("page"))
        (app / "ui").mkdir()
        (app / "ui" / "index.html").write_text(PAGE)
        (app / "ui" / "app.js").write_text(SCRIPT)
        app_id, _ = release_app(web, app, developer, operator)
        other_id, _ = release_app(web, write_probe(folder, new_app_id("other")), developer, operator)
    resident = verified_resident(web)
    eventually(lambda: resident.get(f"/v1/miniapps/{app_id}/api/whoami").raise_for_status())
    yield Shipped(app_id, other_id, resident.headers["authorization"].removeprefix("Bearer "))


async def _route_host(context: BrowserContext, server: RealServer, token: str) -> None:
    """The host page and its script, on the server's origin under the shell's own policy."""
    files = {
        "/__host__/index.html": ("text/html", HOST_PAGE),
        "/__host__/host.js": ("text/javascript", HOST_SCRIPT),
        "/__host__/token": ("text/plain", token),
    }

    async def fulfil(route: Route) -> None:
        media, body = files[route.request.url.removeprefix(server.url).split("?")[0]]
        await route.fulfill(status=200, content_type=media, body=body, headers=dict(SECURITY_HEADERS))

    await context.route(f"{server.url}/__host__/**", fulfil)


async def _app_frame(page_frames: list[Frame], app_id: str) -> Frame:
    return next(f for f in page_frames if f"/miniapps/{app_id}/ui/" in f.url)


ATTACKS = """async ([origin, otherId, appId]) => {
  const violations = [];
  document.addEventListener("securitypolicyviolation", (e) => violations.push(e.blockedURI));
  const tryIt = async (what) => { try { return "allowed: " + (await what()); } catch (e) { return "blocked: " + e.name; } };
  const results = {
    origin: window.origin,
    elsewhere: await tryIt(() => fetch("https://example.com/").then((r) => r.status)),
    me: await tryIt(() => fetch(origin + "/v1/me").then((r) => r.status)),
    otherApp: await tryIt(() => fetch(origin + "/v1/miniapps/" + otherId + "/api/whoami").then((r) => r.status)),
    ownApp: await tryIt(() => fetch(origin + "/v1/miniapps/" + appId + "/api/whoami",
      { headers: { authorization: "Bearer yas_forged" } }).then((r) => r.status)),
    storage: await tryIt(async () => localStorage.getItem("yima.app")),
    cookie: await tryIt(async () => document.cookie),
    parentStorage: await tryIt(async () => parent.localStorage.getItem("yima.app")),
    parentDocument: await tryIt(async () => parent.document.cookie),
    image: await tryIt(() => new Promise((ok, no) => { const i = new Image(); i.onload = () => ok("loaded");
      i.onerror = () => no(new Error("img")); i.src = "https://example.com/pixel.png"; })),
  };
  await new Promise((r) => setTimeout(r, 50));  // violation events are queued as tasks
  results.violations = violations;
  return results;
}"""


async def test_a_page_calls_its_app_and_the_host_asks_for_consent_and_payment(
    web: RealServer, browser: Browser, shipped: Shipped
) -> None:
    async with opened(browser, web, "/static/base.css") as tab:
        await _route_host(tab.page.context, web, shipped.token)
        await tab.page.goto(f"/__host__/index.html?app={shipped.app_id}")
        frame_element = tab.page.locator("iframe")
        assert await frame_element.get_attribute("sandbox") == "allow-scripts"
        page = tab.page.frame_locator("iframe")
        await page.locator("#me").filter(has_text="u_").wait_for(timeout=30_000)
        me = await page.locator("#me").text_content()
        assert me is not None and me.startswith("u_")

        await page.locator("#age").click()
        dialog = tab.page.get_by_role("dialog")
        await dialog.filter(has_text="consent birth_date: Seniors ride free").wait_for()
        await dialog.get_by_role("button", name="同意").click()
        await page.locator("#age-out").filter(has_text="-").wait_for()
        born = await page.locator("#age-out").text_content()
        assert born is not None and len(born) == 10  # the resident's birth date, as consented

        await page.locator("#pay").click()
        await dialog.filter(has_text=f"pay 200 {shipped.app_id}").wait_for()
        await dialog.get_by_role("button", name="拒绝").click()
        await page.locator("#pay-out").filter(has_text="declined").wait_for()

        frame = await _app_frame(tab.page.frames, shipped.app_id)
        await frame.evaluate("yima.showCode()")
        assert await tab.page.locator("#shown").text_content() == "code shown"
        # asked again, a decided scope is answered without a prompt
        assert await frame.evaluate("yima.requestConsent('birth_date')") is True
        assert await tab.page.get_by_role("dialog").count() == 0
    assert tab.outside == [] and tab.errors == []


async def test_a_hostile_page_reaches_nothing_but_its_own_app(
    web: RealServer, browser: Browser, shipped: Shipped
) -> None:
    async with opened(browser, web, "/static/base.css") as tab:
        await _route_host(tab.page.context, web, shipped.token)
        await tab.page.goto(f"/__host__/index.html?app={shipped.app_id}")
        await tab.page.frame_locator("iframe").locator("#me").filter(has_text="u_").wait_for(timeout=30_000)
        frame = await _app_frame(tab.page.frames, shipped.app_id)
        results = await frame.evaluate(ATTACKS, [web.url, shipped.other_id, shipped.app_id])
        assert results["origin"] == "null"  # sandboxed: nothing of the server's origin is this page's
        for blocked in (
            "elsewhere",
            "me",
            "otherApp",
            "storage",
            "cookie",
            "parentStorage",
            "parentDocument",
        ):
            assert results[blocked].startswith("blocked"), (blocked, results)
        assert results["image"].startswith("blocked")
        # its own gateway is allowed by the policy (and refuses a forged session)
        assert results["ownApp"] == "allowed: 401", results
        assert {v.split("?")[0] for v in results["violations"]} >= {
            "https://example.com/",
            f"{web.url}/v1/me",
            f"{web.url}/v1/miniapps/{shipped.other_id}/api/whoami",
            "https://example.com/pixel.png",
        }, results

        # The app session a page gets by the handshake: good on its own gateway, refused on another app's and
        # on the resident's own routes, even when sent from the server's origin where no policy stops it.
        handshake = """([origin, id, renew]) => new Promise((resolve) => {
                 addEventListener("message", (e) => { if (e.data && e.data.id === id) resolve(e.data.result.token); });
                 parent.postMessage({ yima: 1, id, type: "session", data: { renew } }, origin);
               })"""
        token = await frame.evaluate(handshake, [web.url, 4242, False])
        assert token.startswith("yas_")
        # the host reuses a session with time left (a page asking in a loop costs the server nothing), and opens
        # a new one when the page says its session was refused
        assert await frame.evaluate(handshake, [web.url, 4243, False]) == token
        assert await frame.evaluate(handshake, [web.url, 4244, True]) not in ("", token)
        answers = await tab.page.evaluate(
            """async ([token, paths]) => {
                 const out = {};
                 for (const path of paths) {
                   const r = await fetch(path, { headers: { authorization: "Bearer " + token } });
                   out[path] = [r.status, (await r.json()).code || "ok"];
                 }
                 return out;
               }""",
            [
                token,
                [f"/v1/miniapps/{a}/api/whoami" for a in (shipped.app_id, shipped.other_id)] + ["/v1/me"],
            ],
        )
        assert answers == {
            f"/v1/miniapps/{shipped.app_id}/api/whoami": [200, "ok"],
            f"/v1/miniapps/{shipped.other_id}/api/whoami": [401, "miniapp.session_invalid"],
            "/v1/me": [401, "auth.app_session_elsewhere"],
        }
    assert tab.outside == []  # nothing left the browser: the policy stopped it before the network
    assert tab.errors and all("Content Security Policy" in e or "Failed to load" in e for e in tab.errors), (
        tab.errors
    )


async def test_the_page_opened_on_its_own_still_has_no_origin(
    web: RealServer, browser: Browser, shipped: Shipped
) -> None:
    async with opened(browser, web, f"/miniapps/{shipped.app_id}/ui/") as tab:
        await tab.page.locator("#me").filter(has_text="shell.missing").wait_for()
        assert await tab.page.evaluate("window.origin") == "null"
        storage = await tab.page.evaluate(
            "() => { try { return localStorage.length; } catch (e) { return e.name; } }"
        )
        assert storage == "SecurityError"
    assert tab.outside == []
