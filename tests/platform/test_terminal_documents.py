"""Terminal documents (`ctx.terminals.publish`): what an app publishes reaches the terminals of the scenes bound to
it, signed by the trust-list root, and nobody else's; a terminal (yima_sdk.terminal) verifies and applies it."""

from __future__ import annotations

import base64
import time
from pathlib import Path

import pytest
from yima_sdk.documents import DocumentError
from yima_sdk.terminal import Terminal

from sandbox.capabilities import CallInfo
from tests.credentials.helpers import register_terminal, terminal_token
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

        # Version 2, from a minute ago: the answer changes, and the terminal applies it.
        table = TABLE | {"version": 2, "lines": {"1": {"name": "1路", "flat_fen": 300}}}
        now = int(time.time()) - 60
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
