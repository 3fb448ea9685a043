"""Scan events: a scene bound to a released app delivers accepted scans to its handler, whose display lines
join the answer; a slow or failing app is marked missing and the answer still comes within the deadline."""

from __future__ import annotations

import datetime as dt
import time
import uuid
from pathlib import Path

from server.terminals.events import ScanEvent
from tests.conftest import login
from tests.platform.conftest import Team, call, new_app_id, write_probe


def scan(kind: str, scene: str, account_id: int | None, result: str = "accept") -> ScanEvent:
    return ScanEvent(
        str(uuid.uuid4()),
        "term-1",
        kind,
        scene,
        result,
        None,
        "ankang_code",
        account_id,
        dt.datetime.now(dt.UTC),
        "online",
    )


async def test_scan_event_adds_display_lines_and_failures_are_marked_missing(
    team: Team, tmp_path: Path
) -> None:
    app_id, _ = await team.ship(write_probe(tmp_path, new_app_id()))
    sink = team.scan_events
    assert team.client.app.state.terminals.scans.events is sink  # the terminals pipeline calls this sink
    scene = f"clinic-{uuid.uuid4().hex[:6]}"
    for kind in ("clinic", "pharmacy", "bus", "counter"):
        r = await team.admin("PUT", f"/scenes/{kind}/{scene}", json={"app_id": app_id})
        assert r.status_code == 200, r.text
    r = await team.admin("PUT", f"/scenes/scenic/{scene}", json={"app_id": app_id})
    assert r.status_code == 422 and r.json()["code"] == "release.scene_not_subscribed"
    resident = await login(team.client)
    me = (await call(team.client, resident, app_id, "GET", "/whoami")).json()["user_id"]  # uses the app

    part = await sink.scan_recorded(scan("clinic", scene, resident.account_id))
    assert (part.app_id, part.lines, part.missing) == (app_id, ["Queue number 7", "Room 203"], False)
    # the app saw the resident only by its app-scoped id
    seen = (await call(team.client, resident, app_id, "GET", "/docs/last-scan")).json()["doc"]["value"]
    assert seen == {"user": me, "scene": scene}

    broken = await sink.scan_recorded(scan("bus", scene, resident.account_id))
    assert broken.missing and broken.reason == "miniapp.failed" and broken.lines == []
    # an answer outside {"lines": [...]}: marked missing with its own code, and the app's log says why
    bad = await sink.scan_recorded(scan("counter", scene, resident.account_id))
    assert (bad.missing, bad.reason, bad.lines) == (True, "miniapp.bad_scan_reply", [])
    logs = team.client.app.state.platform.runtime.host.logs(f"{app_id}@1.0.0")
    assert any(r["event"] == "bad scan reply" and "booked" in r["detail"] for r in logs), logs

    started = time.perf_counter()
    late = await sink.scan_recorded(scan("pharmacy", scene, resident.account_id))
    assert late.missing and late.reason == "miniapp.timeout"
    assert time.perf_counter() - started < 1.0  # the 300 ms deadline, not the app's 1.5 s
    # rejected scans and unbound scenes do not reach any app
    assert await sink.scan_recorded(scan("clinic", scene, resident.account_id, result="reject")) is None
    assert await sink.scan_recorded(scan("clinic", "unbound-scene", resident.account_id)) is None
    # a suspended app's part is missing, the scan still answered
    await team.admin("POST", f"/{app_id}/suspend", json={"reason": "test"})
    gone = await sink.scan_recorded(scan("clinic", scene, resident.account_id))
    assert gone.missing and gone.reason == "miniapp.suspended"
