"""Terminal documents (`ctx.terminals.publish`): what an app publishes reaches the terminals of the scenes bound to
it, signed by the trust-list root, and nobody else's; a terminal (yima_sdk.terminal) verifies and applies it."""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import time
import uuid
from pathlib import Path

import pytest
from yima_sdk.documents import DocumentError
from yima_sdk.holder import Holder
from yima_sdk.terminal import Terminal

from sandbox.capabilities import CallInfo
from server.wire import b64url, b64url_decode
from tests.credentials.helpers import register_terminal, terminal_token
from tests.onecard.helpers import balance, fund, resident_with_card
from tests.platform.conftest import Team, new_app_id, write_probe

NEW_YEAR = 1767196800  # 2026-01-01 00:00 county time
TABLE = {
    "version": 1,
    "effective_from": "2026-01-01T00:00:00+08:00",
    "lines": {"1": {"name": "1路", "flat_fen": 200}},
}


async def test_the_terminals_of_an_apps_scene_sync_its_signed_documents(team: Team, tmp_path: Path) -> None:
    app_id, _ = await team.ship(write_probe(tmp_path, new_app_id("docs")))
    r = await team.admin("PUT", f"/scenes/bus/{app_id}", json={"app_id": app_id})
    assert r.status_code == 200, r.text
    caps = team.client.app.state.platform.caps
    call = CallInfo(app_id=app_id, version="1.0.0", call_id=1, user_id=None)

    async def publish(version: int, effective_from: int, content: dict) -> None:
        kwargs = {"name": "fares", "version": version, "effective_from": effective_from, "content": content}
        await caps.handle(call, "terminals", "publish", [], kwargs)

    await publish(1, NEW_YEAR, TABLE)
    terminal_id, key = await register_terminal(
        team.client, team.operator, kind="bus", scene=app_id, unit="line:1"
    )
    headers = await terminal_token(team.client, terminal_id, key)
    assert (await team.client.get("/v1/terminal/documents")).status_code == 401
    first = await team.client.get("/v1/terminal/documents", headers=headers)
    assert first.status_code == 200, first.text
    info = (await team.client.get("/v1/trust-list/info")).json()
    roots = {kid: base64.urlsafe_b64decode(k + "==") for kid, k in info["root_public_keys"].items()}
    terminal = Terminal(
        root_public_keys=roots, db_path=str(tmp_path / "bus.sqlite"), clock=time.time, clock_source="ntp",
        app_id=app_id,
    )  # fmt: skip
    try:
        assert terminal.load_documents(first.content) == 1
        assert terminal.fare("1") == 200
        etag = first.headers["etag"]
        same = await team.client.get("/v1/terminal/documents", headers=headers | {"if-none-match": etag})
        assert same.status_code == 304

        # Version 2, from half a minute ago (within the grace): the answer changes, and the terminal applies it.
        table = TABLE | {"version": 2, "lines": {"1": {"name": "1路", "flat_fen": 300}}}
        now = int(time.time()) - 30
        table["effective_from"] = time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime(now))
        await publish(2, now, table)
        second = await team.client.get("/v1/terminal/documents", headers=headers | {"if-none-match": etag})
        assert second.status_code == 200 and second.headers["etag"] != etag
        assert terminal.load_documents(second.content) == 2
        assert terminal.fare("1") == 300
    finally:
        terminal.close()

    # A terminal of another scene receives none of them; one of another app refuses them.
    other_id, other_key = await register_terminal(team.client, team.operator, kind="clinic")
    other = await team.client.get(
        "/v1/terminal/documents", headers=await terminal_token(team.client, other_id, other_key)
    )
    assert other.status_code == 200 and other.json() == {"documents": []}
    stranger = Terminal(
        root_public_keys=roots, db_path=str(tmp_path / "other.sqlite"), clock=time.time, clock_source="ntp",
        app_id="gov.guangde.elsewhere",
    )  # fmt: skip
    try:
        with pytest.raises(DocumentError, match="not of this terminal's app"):
            stranger.load_documents(second.content)
        assert stranger.fares is None
    finally:
        stranger.close()


def _record(payload: str, amount: int, at: float) -> dict:
    return {"record_id": str(uuid.uuid4()), "payload": payload, "scanned_at": int(at * 1000),
            "clock_source": "ntp", "amount_fen": amount, "local_result": "accept", "local_reason": None}  # fmt: skip


async def test_settlement_charges_the_published_fare_in_force_at_the_ride_once(
    team: Team, tmp_path: Path
) -> None:
    """Offline ride codes uploaded by bus terminals of the app's scene: re-priced by the version in force at each
    ride; a line the tables lack is not charged; a terminal serving no line is charged as it asked; the same
    upload sent twice at once charges once."""
    client = team.client
    app_id, _ = await team.ship(write_probe(tmp_path, new_app_id("fares")))
    assert (await team.admin("PUT", f"/scenes/bus/{app_id}", json={"app_id": app_id})).status_code == 200
    caps = client.app.state.platform.caps
    call = CallInfo(app_id=app_id, version="1.0.0", call_id=1, user_id=None)
    rider = await resident_with_card(client)
    await fund(client, rider, 5000)
    holder = Holder.generate()
    r = await client.post(
        "/v1/me/devices", json={"public_key": b64url(holder.device_public_key)}, headers=rider.headers
    )
    assert r.status_code == 201, r.text
    holder.install_certificate(b64url_decode(r.json()["certificate"]))
    certified = time.time()
    switch = (
        int(certified) + 2
    )  # version 2 (line 1 at 3 yuan) in force two seconds after the phone's certificate
    v2 = TABLE | {"version": 2, "effective_from": dt.datetime.fromtimestamp(switch, dt.UTC).isoformat()}
    v2["lines"] = {"1": {"name": "1路", "flat_fen": 300}}
    for version, start, table in [(1, NEW_YEAR, TABLE), (2, switch, v2)]:
        kwargs = {"name": "fares", "version": version, "effective_from": start, "content": table}
        await caps.handle(call, "terminals", "publish", [], kwargs)
    await asyncio.sleep(max(0.0, switch + 1 - time.time()))  # a ride after the switch: the clock's own pace

    async def bus(unit: str | None) -> dict[str, str]:
        terminal_id, key = await register_terminal(client, team.operator, kind="bus", scene=app_id, unit=unit)
        return await terminal_token(client, terminal_id, key)

    async def upload(headers: dict[str, str], records: list[dict], batch_id: str | None = None) -> list:
        body = {"batch_id": batch_id or str(uuid.uuid4()), "records": records}
        r = await client.post("/v1/scans/batch", json=body, headers=headers)
        assert r.status_code == 200, r.text
        return [(x["status"], x["reason"]) for x in r.json()["results"]]

    now = time.time()
    line_1, line_9, no_line = await bus("line:1"), await bus("line:9"), await bus(None)
    # Line 1's terminal held version 1 only (2 yuan): a ride now is 3 yuan; one before the switch, 2 yuan.
    early = switch - 1.5
    rides = [_record(holder.ride_code(early), 200, early), _record(holder.ride_code(now), 200, now)]
    twice = await asyncio.gather(*(upload(line_1, rides, "same-upload") for _ in range(2)))
    assert twice == [[("accepted", None), ("accepted", None)]] * 2
    assert await balance(client, rider) == 5000 - 200 - 300
    # Line 9 is in no table: not charged, and the terminal learns why.
    assert await upload(line_9, [_record(holder.ride_code(now), 200, now)]) == [("rejected", "fare.unpriced")]
    # A terminal serving no line: charged what it asked.
    assert await upload(no_line, [_record(holder.ride_code(now), 250, now)]) == [("accepted", None)]
    assert await balance(client, rider) == 5000 - 200 - 300 - 250

    month = dt.datetime.now(dt.timezone(dt.timedelta(hours=8))).strftime("%Y-%m")
    r = await client.get("/v1/me/onecard/statements", params={"month": month}, headers=rider.headers)
    lines = [
        (e["amount_fen"], "asked 200 fen" in e["description"])
        for e in r.json()["entries"]
        if e["kind"] == "offline_ride"
    ]
    assert sorted(lines) == [(-300, True), (-250, False), (-200, False)]
