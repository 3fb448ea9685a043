"""Terminal lists (`ctx.terminals.hold` / `drop`) through the real core: a unit's terminals sync its entries
incrementally (`GET /v1/terminal/lists`), never a resident's id; the real terminal SDK finds the holder's entry by
their Ankang code alone and a pass's entry by the pass; drops reach the terminals as tombstones; a revoked code
generation is re-tagged; concurrent holds are never missed by a sync nor exceed the quota."""

from __future__ import annotations

import asyncio
import base64
import secrets
import time
from pathlib import Path
from typing import Any

import pytest
from yima_sdk.errors import QuotaExceeded
from yima_sdk.terminal import Terminal

from sandbox.capabilities import CallInfo
from tests.conftest import Session, login, valid_id_number
from tests.credentials.helpers import register_terminal, terminal_token
from tests.platform.conftest import Team, new_app_id, write_probe

SPOT, OTHER_SPOT = "spot:taiji-cave", "spot:jishan-bamboo"


async def _resident(team: Team) -> Session:
    resident = await login(team.client)
    number = valid_id_number(birth="19900514", seq=f"{secrets.randbelow(1000):03d}")
    r = await team.client.put(
        "/v1/me/identity", json={"name": "李小红", "id_number": number}, headers=resident.headers
    )
    assert r.status_code == 200, r.text
    return resident


async def _code(team: Team, resident: Session) -> str:
    r = await team.client.get("/v1/me/codes/ankang", headers=resident.headers)
    assert r.status_code == 200, r.text
    return str(r.json()["payload"])


class _App:
    def __init__(self, team: Team, app_id: str) -> None:
        self.team, self.app_id = team, app_id
        self.caps = team.client.app.state.platform.caps
        self.expires_at = int(time.time()) + 3600

    async def call(self, operation: str, **kwargs: Any) -> Any:
        call = CallInfo(app_id=self.app_id, version="1.0.0", call_id=1, user_id=None)
        return await self.caps.handle(call, "terminals", operation, [], kwargs)

    async def hold(self, key: str, unit: str = SPOT, **kwargs: Any) -> Any:
        return await self.call("hold", list="gate", unit=unit, key=key, expires_at=self.expires_at, **kwargs)


async def _setup(team: Team, tmp_path: Path) -> _App:
    app_id, _ = await team.ship(write_probe(tmp_path, new_app_id("lists")))
    r = await team.admin("PUT", f"/scenes/counter/{app_id}", json={"app_id": app_id})
    assert r.status_code == 200, r.text
    return _App(team, app_id)


async def _gate(team: Team, app: _App, unit: str | None) -> dict[str, str]:
    terminal_id, key = await register_terminal(
        team.client, team.operator, kind="counter", scene=app.app_id, unit=unit
    )
    return await terminal_token(team.client, terminal_id, key)


async def _sync(team: Team, headers: dict[str, str], after: int = 0) -> dict[str, Any]:
    r = await team.client.get(f"/v1/terminal/lists?after={after}", headers=headers)
    assert r.status_code == 200, r.text
    return dict(r.json())


def _terminal(team: Team, roots: dict[str, bytes], path: Path) -> Terminal:
    return Terminal(root_public_keys=roots, db_path=str(path), clock=time.time, clock_source="ntp")


async def _roots(team: Team) -> dict[str, bytes]:
    info = (await team.client.get("/v1/trust-list/info")).json()
    return {kid: base64.urlsafe_b64decode(k + "==") for kid, k in info["root_public_keys"].items()}


async def test_a_units_terminal_finds_the_holders_entry_by_their_code_and_learns_no_one(
    team: Team, tmp_path: Path
) -> None:
    app = await _setup(team, tmp_path)
    alice, bob = await _resident(team), await _resident(team)
    alice_id = await app.caps.seen(app.app_id, alice.account_id)
    issued = await app.caps.handle(
        CallInfo(app_id=app.app_id, version="1.0.0", call_id=1, user_id=alice_id), "credentials", "issue_pass",
        [], {"kind": "ticket", "data": {"n": 1}, "valid_until": int(time.time()) + 3600},
    )  # fmt: skip
    held = await app.hold("ticket.1", value={"people": 2}, user_id=alice_id)
    assert (held.bound, held.key) == (True, "ticket.1")
    await app.hold("ticket.2", value={"people": 1}, pass_id=issued.id)
    await app.hold("ticket.1", unit=OTHER_SPOT, value={"people": 2}, user_id=alice_id)

    gate = await _gate(team, app, SPOT)
    assert (await team.client.get("/v1/terminal/lists")).status_code == 401
    answer = await _sync(team, gate)
    assert (answer["app_id"], answer["unit"], answer["more"]) == (app.app_id, SPOT, False)
    assert [e["key"] for e in answer["entries"]] == ["ticket.1", "ticket.2"]
    text = str(answer)
    assert alice_id not in text and "user_id" not in text and "account" not in text
    other = await _sync(team, await _gate(team, app, OTHER_SPOT))
    assert [e["key"] for e in other["entries"]] == ["ticket.1"]
    # the same resident in two lists: other salts, other tags; nothing joins them
    assert answer["salts"][0]["salt"] != other["salts"][0]["salt"]
    assert answer["entries"][0]["tags"] != other["entries"][0]["tags"]
    assert (await _sync(team, await _gate(team, app, None)))["entries"] == []

    terminal = _terminal(team, await _roots(team), tmp_path / "gate.sqlite")
    try:
        r = await team.client.get("/v1/trust-list")
        terminal.load_trust_list(r.content)
        r = await team.client.get("/v1/terminal/lists", headers=gate)
        assert terminal.load_lists(r.content) == 2
        found = terminal.scan(await _code(team, alice))
        assert found.code is not None
        assert [(e.key, e.value) for e in terminal.held(found.code)] == [("ticket.1", {"people": 2})]
        stranger = terminal.scan(await _code(team, bob))
        assert stranger.code is not None and terminal.held(stranger.code) == []
        by_pass = terminal.scan(issued.payload)
        assert by_pass.code is not None and [e.key for e in terminal.held(by_pass.code)] == ["ticket.2"]

        # nothing changed: the next sync is empty; a drop comes as a tombstone and the entry is gone
        assert (await _sync(team, gate, answer["cursor"]))["entries"] == []
        assert await app.call("drop", list="gate", unit=SPOT, key="ticket.1") is True
        changes = await _sync(team, gate, answer["cursor"])
        assert [(e["key"], e.get("dropped")) for e in changes["entries"]] == [("ticket.1", True)]
        r = await team.client.get(f"/v1/terminal/lists?after={answer['cursor']}", headers=gate)
        assert terminal.load_lists(r.content) == 1
        assert terminal.held(terminal.scan(await _code(team, alice)).code) == []  # type: ignore[arg-type]

        # alice revokes her codes (a lost phone): her entry elsewhere is made anew for her new codes at the sync
        elsewhere = await _gate(team, app, OTHER_SPOT)
        before = await _sync(team, elsewhere)
        r = await team.client.post("/v1/me/codes/ankang/revoke", headers=alice.headers)
        assert r.status_code == 200, r.text
        retagged = await _sync(team, elsewhere, before["cursor"])
        assert [e["key"] for e in retagged["entries"]] == ["ticket.1"]
        assert retagged["entries"][0]["tags"] != before["entries"][0]["tags"]
        # a sync far ahead of the server (a new database) starts over
        assert (await _sync(team, gate, 10**9))["reset"] is True
    finally:
        terminal.close()


async def test_holds_at_once_are_each_synced_once_and_never_exceed_the_quota(
    team: Team, tmp_path: Path
) -> None:
    app = await _setup(team, tmp_path)
    gate = await _gate(team, app, SPOT)
    seen: dict[str, int] = {}
    cursor = 0

    async def follow() -> None:
        nonlocal cursor
        answer = await _sync(team, gate, cursor)
        for entry in answer["entries"]:
            seen[entry["key"]] = entry["seq"]
        cursor = answer["cursor"]

    holds = [app.hold(f"t.{i}", value={"i": i}) for i in range(20)]
    syncs = [follow() for _ in range(10)]
    await asyncio.gather(*holds, *[s for s in syncs])
    await follow()
    assert sorted(seen) == sorted(f"t.{i}" for i in range(20))  # no change missed by a sync running alongside
    again = await asyncio.gather(*[app.hold(f"t.{i}", value={"i": i}) for i in range(20)])
    assert len(again) == 20 and (await _sync(team, gate, cursor))["entries"] == []  # retries change nothing

    app.caps.lists.max_entries = 25
    results = await asyncio.gather(*[app.hold(f"more.{i}") for i in range(10)], return_exceptions=True)
    refused = [r for r in results if isinstance(r, Exception)]
    assert len(refused) == 5 and all(isinstance(r, QuotaExceeded) for r in refused), results
    app.caps.lists.max_entries = 10_000
    with pytest.raises(QuotaExceeded):  # the quota is per list and unit, of live entries
        app.caps.lists.max_entries = 25
        await app.hold("one.more")
    app.caps.lists.max_entries = 10_000


class _ChangedMeanwhile:
    """The lists' code generations, which run `meanwhile` once just after the re-tagging sync read them: a hold
    or a drop committed between that read and its writes."""

    def __init__(self, codes: Any, meanwhile: Any) -> None:
        self._codes, self._meanwhile = codes, meanwhile

    def __getattr__(self, name: str) -> Any:
        return getattr(self._codes, name)

    async def code_generations(self, conn: Any, accounts: list[int]) -> dict[int, int]:
        found: dict[int, int] = await self._codes.code_generations(conn, accounts)
        meanwhile, self._meanwhile = self._meanwhile, None
        if meanwhile is not None:
            await meanwhile()
        return found


async def test_a_retag_never_lands_on_an_entry_held_again_or_dropped_meanwhile(
    team: Team, tmp_path: Path
) -> None:
    app = await _setup(team, tmp_path)
    alice, bob = await _resident(team), await _resident(team)
    alice_id = await app.caps.seen(app.app_id, alice.account_id)
    bob_id = await app.caps.seen(app.app_id, bob.account_id)
    await app.hold("ticket.1", value={}, user_id=alice_id)
    await app.hold("ticket.2", value={}, user_id=alice_id)
    gate = await _gate(team, app, SPOT)
    r = await team.client.post("/v1/me/codes/ankang/revoke", headers=alice.headers)
    assert r.status_code == 200, r.text

    async def meanwhile() -> None:  # her ticket 1 goes to bob, her ticket 2 is cancelled
        assert await app.call("drop", list="gate", unit=SPOT, key="ticket.1") is True
        await app.hold("ticket.1", value={}, user_id=bob_id)
        assert await app.call("drop", list="gate", unit=SPOT, key="ticket.2") is True

    lists = app.caps.lists
    codes = lists.codes
    lists.codes = _ChangedMeanwhile(codes, meanwhile)
    try:
        r = await team.client.get("/v1/terminal/lists", headers=gate)
        assert r.status_code == 200, r.text
    finally:
        lists.codes = codes
    terminal = _terminal(team, await _roots(team), tmp_path / "gate.sqlite")
    try:
        terminal.load_trust_list((await team.client.get("/v1/trust-list")).content)
        assert terminal.load_lists(r.content) == 1
        by_bob = terminal.scan(await _code(team, bob))
        assert by_bob.code is not None and [e.key for e in terminal.held(by_bob.code)] == ["ticket.1"]
        by_alice = terminal.scan(await _code(team, alice))
        assert by_alice.code is not None and terminal.held(by_alice.code) == []
    finally:
        terminal.close()
    async with lists.core.db.connection() as conn:
        tombstone = await conn.fetchrow(
            "SELECT dropped, tags FROM terminal_list_entries WHERE app_id = $1 AND key = 'ticket.2'",
            app.app_id,
        )
    assert tombstone is not None and (tombstone["dropped"], tombstone["tags"]) == (True, None)


async def test_drops_count_in_the_quota_and_expired_entries_forget_their_resident(
    team: Team, tmp_path: Path
) -> None:
    app = await _setup(team, tmp_path)
    lists = app.caps.lists
    alice = await _resident(team)
    alice_id = await app.caps.seen(app.app_id, alice.account_id)
    await app.hold("t.1", unit=OTHER_SPOT, value={}, user_id=alice_id)
    await app.hold("t.2", unit=OTHER_SPOT, value={})
    assert await app.call("drop", list="gate", unit=OTHER_SPOT, key="t.2") is True
    lists.max_entries = 2
    try:  # its tombstone is synced until t.2 would have expired: a drop and a hold again do not grow the list
        with pytest.raises(QuotaExceeded):
            await app.hold("t.3", unit=OTHER_SPOT, value={})
        await app.hold("t.2", unit=OTHER_SPOT, value={"again": True})  # held again in its own place
    finally:
        lists.max_entries = 10_000

    async def rows() -> list[Any]:
        async with lists.core.db.connection() as conn:
            return list(
                await conn.fetch(
                    "SELECT key, account_id, tags FROM terminal_list_entries WHERE app_id = $1 ORDER BY key",
                    app.app_id,
                )
            )

    assert [(r["key"], r["account_id"] is not None) for r in await rows()] == [("t.1", True), ("t.2", False)]
    clock = lists.clock
    try:
        lists.clock = lambda: app.expires_at + 1.0  # past their expiry: nobody's account is kept
        await lists.prune_expired()
        assert [(r["key"], r["account_id"], r["tags"]) for r in await rows()] == [
            ("t.1", None, None), ("t.2", None, None)
        ]  # fmt: skip
        lists.clock = lambda: app.expires_at + 86400 + 2.0  # a day later they go
        await lists.prune_expired()
        assert await rows() == []
    finally:
        lists.clock = clock
