"""`[scan_preload]`: the finds an app declares for a scene kind run before its scan event leaves, and their pages
reach the handler in `event.data.preloaded`, the same on the server (real PostgreSQL, a released app, the scan
sink the terminals pipeline calls) and in the SDK's simulator."""

from __future__ import annotations

import datetime as dt
import uuid
from pathlib import Path
from typing import Any

from yima_sdk.cron import COUNTY_TIME
from yima_sdk.simulator import AsyncSimulator

from server.terminals.events import ScanEvent
from tests.conftest import login
from tests.platform.conftest import Team, call, new_app_id

MANIFEST = """id = "{app_id}"
name = "Preload probe"
version = "1.0.0"
capabilities = ["db"]
scenes = ["clinic"]

[collections.visits]
indexes = [["user_id", "day"]]

[scan_preload.clinic]
today = { collection = "visits", where = { user_id = "$user_id", day = "$today" }, limit = 5 }
"""

SOURCE = """
from yima_sdk import App

app = App()


@app.post("/visits/{day}")
async def visit(ctx, request):
    await ctx.db.insert("visits", {"user_id": ctx.user_id, "day": request.path_params["day"]})
    return {"ok": True}


@app.on_scan("clinic")
async def scanned(ctx, event):
    page = event.data.preloaded.get("today")
    if page is None:
        return {"lines": ["no preload"]}
    return {"lines": [f"{len(page.items)} visit(s) {page.items[0].value['day'] if page.items else '-'}",
                      "mine" if all(r.value["user_id"] == event.user_id for r in page.items) else "not mine"]}
"""

# 02:00 in county time is 18:00 UTC the day before: `$today` is the county's day, not UTC's
SCANNED_AT = dt.datetime(2026, 3, 2, 2, 0, tzinfo=COUNTY_TIME).astimezone(dt.UTC)
TODAY, YESTERDAY = "2026-03-02", "2026-03-01"


def write_app(root: Path, app_id: str) -> Path:
    folder = root / app_id
    folder.mkdir(parents=True)
    (folder / "miniapp.toml").write_text(MANIFEST.replace("{app_id}", app_id))
    (folder / "app.py").write_text(SOURCE)
    return folder


def scan(scene: str, account_id: int | None) -> ScanEvent:
    return ScanEvent(
        scan_id=str(uuid.uuid4()),
        terminal_id="term-1",
        kind="clinic",
        scene=scene,
        result="accept",
        reason=None,
        credential_type="ankang_code",
        account_id=account_id,
        scanned_at=SCANNED_AT,
        mode="online",
    )


async def test_preloaded_pages_reach_the_handler_alike_on_the_server_and_in_the_simulator(
    team: Team, tmp_path: Path
) -> None:
    folder = write_app(tmp_path, new_app_id("preload"))
    app_id, _ = await team.ship(folder)
    scene = f"clinic-{uuid.uuid4().hex[:6]}"
    r = await team.admin("PUT", f"/scenes/clinic/{scene}", json={"app_id": app_id})
    assert r.status_code == 200, r.text
    resident, stranger = await login(team.client), await login(team.client)
    for day in (TODAY, YESTERDAY, TODAY):
        assert (await call(team.client, resident, app_id, "POST", f"/visits/{day}")).status_code == 200
    other = await login(team.client)
    assert (await call(team.client, other, app_id, "POST", f"/visits/{TODAY}")).status_code == 200

    server: dict[str, Any] = {}
    sink = team.scan_events
    for who, account in (("resident", resident), ("stranger", stranger)):
        event = scan(scene, account.account_id)
        # as the scan pipeline does: the event read for while the scan commits, then delivered
        part = await sink.scan_recorded(event, sink.prepare(event))
        assert part is not None and not part.missing, part
        server[who] = part.lines
    # what was read for another scan (here another resident's) is never delivered in its place
    theirs = sink.prepare(scan(scene, stranger.account_id))
    part = await sink.scan_recorded(scan(scene, resident.account_id), theirs)
    assert part is not None and part.lines == server["resident"]

    async with AsyncSimulator(folder, clock=lambda: SCANNED_AT.timestamp()) as sim:
        for day in (TODAY, YESTERDAY, TODAY):
            assert (await sim.request("POST", f"/visits/{day}", user="alice")).status == 200
        assert (await sim.request("POST", f"/visits/{TODAY}", user="carol")).status == 200
        simulated = {
            "resident": await sim.scan("clinic", user="alice", scanned_at=SCANNED_AT),
            "stranger": await sim.scan("clinic", user="grandpa", scanned_at=SCANNED_AT),
        }

    # the resident's two visits of the county's day, not the UTC day's, not another resident's
    assert server == simulated == {"resident": [f"2 visit(s) {TODAY}", "mine"], "stranger": ["no preload"]}
