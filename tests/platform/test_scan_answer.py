"""End to end over HTTP: a terminal scans a resident's Ankang code in a scene bound to a released app, and the
app's display lines join the scan answer; a slow app is marked missing while the scan still answers in time;
offline batch records reach the app like online scans."""

from __future__ import annotations

import time
import uuid
from pathlib import Path

from tests.conftest import login_with_role
from tests.credentials.helpers import (
    ankang_payload,
    register_terminal,
    scan,
    terminal_token,
    verified_resident,
)
from tests.platform.conftest import Team, call, new_app_id, write_probe


async def _bound_terminal(team: Team, app_id: str, kind: str, unit: str | None = None) -> dict[str, str]:
    scene = f"{kind}-{uuid.uuid4().hex[:6]}"
    r = await team.admin("PUT", f"/scenes/{kind}/{scene}", json={"app_id": app_id})
    assert r.status_code == 200, r.text
    operator = await login_with_role(team.client, "operator")
    terminal_id, key = await register_terminal(team.client, operator, kind=kind, scene=scene, unit=unit)
    return await terminal_token(team.client, terminal_id, key)


async def test_scan_answer_carries_the_bound_apps_lines_or_marks_them_missing(
    team: Team, tmp_path: Path
) -> None:
    app_id, _ = await team.ship(write_probe(tmp_path, new_app_id()))
    resident, _ = await verified_resident(team.client)
    # the operator registered the clinic's terminal with its staff unit: the app learns where it was scanned
    clinic = await _bound_terminal(team, app_id, "clinic", unit="clinic:guangde-people-1")
    # The resident uses the app: only then does a scan name them to it (issue 16, point 7).
    me = (await call(team.client, resident, app_id, "GET", "/whoami")).json()["user_id"]

    answer = await scan(team.client, clinic, await ankang_payload(team.client, resident))
    assert answer["result"] == "accept"
    assert answer["miniapp"] == {
        "app_id": app_id,
        "lines": ["Queue number 7", "Room 203"],
        "missing": False,
        "reason": None,
    }
    # the handler ran with the resident's app-scoped id, the terminal's scene and its unit
    seen = (await call(team.client, resident, app_id, "GET", "/docs/last-scan")).json()["doc"]["value"]
    assert seen["user"] == me and seen["scene"].startswith("clinic-")
    assert seen["unit"] == "clinic:guangde-people-1"

    # The pharmacy handler sleeps 1.5 s; the scan answers at the 300 ms deadline without the app's lines.
    pharmacy = await _bound_terminal(team, app_id, "pharmacy")
    started = time.perf_counter()
    late = await scan(team.client, pharmacy, await ankang_payload(team.client, resident))
    assert time.perf_counter() - started < 1.2
    assert late["result"] == "accept"
    assert late["miniapp"] == {"app_id": app_id, "lines": [], "missing": True, "reason": "miniapp.timeout"}

    # A terminal whose scene has no app: the field is left out.
    operator = await login_with_role(team.client, "operator")
    plain_id, plain_key = await register_terminal(team.client, operator, kind="clinic")
    plain = await scan(
        team.client,
        await terminal_token(team.client, plain_id, plain_key),
        await ankang_payload(team.client, resident),
    )
    assert plain["result"] == "accept" and "miniapp" not in plain
    await team.scan_events.drain()


async def test_offline_batch_records_reach_the_bound_app(team: Team, tmp_path: Path) -> None:
    app_id, _ = await team.ship(write_probe(tmp_path, new_app_id()))
    resident, _ = await verified_resident(team.client)
    clinic = await _bound_terminal(team, app_id, "clinic")
    me = (await call(team.client, resident, app_id, "GET", "/whoami")).json()["user_id"]
    outbox = team.client.app.state.terminals.scans.outbox
    await outbox.drain()
    record = {
        "record_id": str(uuid.uuid4()),
        "payload": await ankang_payload(team.client, resident),
        "scanned_at": int(time.time() * 1000),
        "clock_source": "ntp",
        "amount_fen": 0,
        "local_result": "accept",
        "local_reason": None,
    }
    r = await team.client.post(
        "/v1/scans/batch", json={"batch_id": str(uuid.uuid4()), "records": [record]}, headers=clinic
    )
    assert r.status_code == 200, r.text
    assert [x["status"] for x in r.json()["results"]] == ["accepted"]
    await outbox.drain()  # the batch does not wait for the app; the delivery finishes in the background
    seen = (await call(team.client, resident, app_id, "GET", "/docs/last-scan")).json()["doc"]
    assert seen is not None and seen["value"]["user"] == me

    # Three scans uploaded latest first reach the app in the order they were scanned: an app pricing a rider's
    # rides sees each one's predecessors first.
    payload, t0 = await ankang_payload(team.client, resident), int(time.time() * 1000)
    records = [record | {"record_id": str(uuid.uuid4()), "payload": payload, "scanned_at": t0 + dt}
               for dt in (300, 200, 100)]  # fmt: skip
    r = await team.client.post(
        "/v1/scans/batch", json={"batch_id": str(uuid.uuid4()), "records": records}, headers=clinic
    )
    assert [x["status"] for x in r.json()["results"]] == ["accepted"] * 3, r.text
    await outbox.drain()
    heard = (await call(team.client, resident, app_id, "GET", "/docs/offline-scans")).json()["doc"]["value"][
        "at"
    ]
    assert len(heard) == 4 and heard[1:] == sorted(heard[1:]), heard
