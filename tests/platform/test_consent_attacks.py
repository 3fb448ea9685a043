"""Attacks on residents' consent (issue 16, point 7), by a hostile app: verifying a stranger's code, reading
scanned residents off a bound scene, then messaging them. An app learns only what the resident consented to."""

from __future__ import annotations

import secrets
import uuid
from pathlib import Path

from tests.conftest import AppClient, Session, login, valid_id_number
from tests.platform.conftest import Team, call, new_app_id
from tests.platform.test_scan_events import scan

HOSTILE_SOURCE = """
from yima_sdk import App, Context, Request, Response

app = App()


@app.get("/whoami")
async def whoami(ctx: Context, request: Request) -> dict:
    return {"user_id": await ctx.user.id()}


@app.post("/verify")
async def verify(ctx: Context, request: Request) -> dict:
    v = await ctx.credentials.verify(request.json()["payload"])
    return {"valid": v.valid, "user_id": v.user_id, "health_color": v.health_color}


@app.post("/message")
async def message(ctx: Context, request: Request) -> Response:
    try:
        sent = await ctx.notify.send("Hello", "We saw you at the clinic", user_id=request.json()["user_id"])
    except Exception as exc:
        return Response.json({"code": getattr(exc, "code", type(exc).__name__)}, status=403)
    return Response.json({"message": sent})


@app.get("/last-scan")
async def last_scan(ctx: Context, request: Request) -> dict:
    doc = await ctx.storage.get_document("last-scan")
    return {"scan": None if doc is None else doc.value}


@app.on_scan("clinic")
async def clinic(ctx: Context, event) -> dict:
    await ctx.storage.put("last-scan", {"user": event.user_id, "scene": event.scene_id})
    return {"lines": ["Welcome"]}
"""

HOSTILE_MANIFEST = """
id = "{app_id}"
name = "Hostile {app_id}"
version = "1.0.0"
entry = "app:app"
capabilities = ["user", "storage", "notify", "credentials", "log"]
scenes = ["clinic"]

[scopes]
health_color = "We check your code at the door"
"""


def _write(root: Path) -> Path:
    app_id = new_app_id("hostile")
    folder = root / app_id
    folder.mkdir(parents=True)
    (folder / "miniapp.toml").write_text(HOSTILE_MANIFEST.replace("{app_id}", app_id))
    (folder / "app.py").write_text(HOSTILE_SOURCE)
    return folder


async def _verified_resident(client: AppClient) -> tuple[Session, str]:
    """A resident with a real name, and their current Ankang code's payload."""
    resident = await login(client)
    id_number = valid_id_number(birth="19770815", seq=f"{secrets.randbelow(1000):03d}")
    r = await client.put(
        "/v1/me/identity", json={"name": "陈七", "id_number": id_number}, headers=resident.headers
    )
    assert r.status_code == 200, r.text
    code = await client.get("/v1/me/codes/ankang", headers=resident.headers)
    assert code.status_code == 200, code.text
    return resident, code.json()["payload"]


async def test_verifying_a_strangers_code_tells_the_app_neither_who_nor_the_colour(
    team: Team, tmp_path: Path
):
    app_id, _ = await team.ship(_write(tmp_path))
    stranger, payload = await _verified_resident(team.client)
    user = await login(team.client)  # someone who does use the app, scanning the stranger's code
    answer = (await call(team.client, user, app_id, "POST", "/verify", json={"payload": payload})).json()
    assert answer == {"valid": True, "user_id": None, "health_color": None}
    # Nor did the verify make the stranger reachable: their app-scoped id names nobody the app may message.
    their_id = team.client.app.state.platform.caps.ids.for_app(app_id, stranger.account_id)
    r = await call(team.client, user, app_id, "POST", "/message", json={"user_id": their_id})
    assert r.status_code == 403 and r.json()["code"] == "capability.invalid_argument"
    inbox = await team.client.get("/v1/me/inbox", headers=stranger.headers)
    assert inbox.json() == []


async def test_scan_at_a_bound_scene_does_not_name_a_resident_who_never_used_the_app(
    team: Team, tmp_path: Path
):
    app_id, _ = await team.ship(_write(tmp_path))
    scene = f"clinic-{uuid.uuid4().hex[:6]}"
    assert (await team.admin("PUT", f"/scenes/clinic/{scene}", json={"app_id": app_id})).status_code == 200
    stranger = await login(team.client)
    part = await team.scan_events.scan_recorded(scan("clinic", scene, stranger.account_id))
    assert part.lines == ["Welcome"]  # the scene's own service still works
    user = await login(team.client)
    seen = (await call(team.client, user, app_id, "GET", "/last-scan")).json()["scan"]
    assert seen == {"user": None, "scene": scene}
    their_id = team.client.app.state.platform.caps.ids.for_app(app_id, stranger.account_id)
    r = await call(team.client, user, app_id, "POST", "/message", json={"user_id": their_id})
    assert r.status_code == 403 and r.json()["code"] == "capability.invalid_argument"


async def test_the_colour_reaches_an_app_only_with_the_residents_consent(team: Team, tmp_path: Path):
    app_id, _ = await team.ship(_write(tmp_path))
    resident, payload = await _verified_resident(team.client)
    me = (await call(team.client, resident, app_id, "GET", "/whoami")).json()["user_id"]
    answer = (await call(team.client, resident, app_id, "POST", "/verify", json={"payload": payload})).json()
    assert answer == {"valid": True, "user_id": me, "health_color": None}
    r = await team.client.put(
        f"/v1/me/consents/{app_id}/health_color", json={"granted": True}, headers=resident.headers
    )
    assert r.status_code == 200, r.text
    answer = (await call(team.client, resident, app_id, "POST", "/verify", json={"payload": payload})).json()
    assert answer == {"valid": True, "user_id": me, "health_color": "green"}


async def test_a_withdrawal_whose_announcement_was_lost_holds_within_the_cache_lifetime(
    team: Team, tmp_path: Path, monkeypatch
):
    """A worker's cached grant is believed at most ENTRY_TTL_S: a withdrawal committed without its announcement
    reaching this worker (Redis refused the publish, the subscription died silently) still holds after it."""
    from server.platform.residents import consents

    app_id, _ = await team.ship(_write(tmp_path))
    resident, payload = await _verified_resident(team.client)
    account_id = (await team.client.get("/v1/me", headers=resident.headers)).json()["id"]
    r = await team.client.put(
        f"/v1/me/consents/{app_id}/health_color", json={"granted": True}, headers=resident.headers
    )
    assert r.status_code == 200, r.text

    async def colour() -> str | None:
        answer = await call(team.client, resident, app_id, "POST", "/verify", json={"payload": payload})
        return answer.json()["health_color"]

    assert await colour() == "green"  # read and kept by this worker
    platform = team.client.app.state.platform
    async with platform.core.db.transaction() as conn:  # withdrawn, and nobody told this worker
        await platform.residents.revoke(conn, account_id, app_id, "health_color")
    now = consents.time.monotonic()
    monkeypatch.setattr(consents.time, "monotonic", lambda: now + consents.ENTRY_TTL_S + 1)
    assert await colour() is None
