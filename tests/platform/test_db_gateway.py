"""`ctx.db` on the real platform: transactions through the gateway and a sandboxed app, under concurrency."""

from __future__ import annotations

import asyncio
import collections
from pathlib import Path
from typing import Any

from sandbox.capabilities import CallInfo
from tests.conftest import login
from tests.platform.conftest import Team, call, new_app_id, write_probe

SLOTS = 7


async def test_concurrent_bookings_take_exactly_the_slots_there_are(team: Team, tmp_path: Path) -> None:
    folder = write_probe(tmp_path, new_app_id("db"))
    app_id, version = await team.ship(folder)
    r = await team.admin(
        "PUT", f"/{app_id}/quotas", json={"calls_per_minute": 100_000, "resident_calls_per_minute": 100_000}
    )
    assert r.status_code == 200, r.text
    resident = await login(team.client)

    # 500 residents' bookings at once through the gateway and the sandboxed app
    answers = await asyncio.gather(
        *(call(team.client, resident, app_id, "POST", f"/db/book?slots={SLOTS}&n={i}") for i in range(500))
    )
    statuses = collections.Counter(a.status_code for a in answers)
    assert statuses[201] == SLOTS, statuses
    assert set(statuses) <= {201, 409, 503}, statuses  # 503: the app's queue was full (sandbox.busy)
    assert sorted(a.json()["slot"] for a in answers if a.status_code == 201) == list(range(1, SLOTS + 1))

    # and the same race straight at the provider, where commits really run side by side on the pool
    caps = team.client.app.state.platform.caps
    writes = [
        {"kind": "counter_add", "name": "db:slots", "max": SLOTS * 2},
        {"kind": "insert", "collection": "bookings", "id": "", "value": {"day": "2026-03-02"}},
    ]

    async def commit(i: int) -> str:
        info = CallInfo(app_id=app_id, version=version, call_id=i)
        booking = {**writes[1], "id": f"direct-{i}"}
        try:
            await caps.handle(info, "db", "commit", [], {"writes": [writes[0], booking]})
        except Exception as exc:  # the refusals are yima_sdk errors with their codes
            return str(getattr(exc, "code", type(exc).__name__))
        return "booked"

    outcomes = collections.Counter(await asyncio.gather(*(commit(i) for i in range(200))))
    assert outcomes == {"booked": SLOTS, "storage.counter_out_of_range": 200 - SLOTS}, outcomes

    r = await call(team.client, resident, app_id, "GET", "/db/bookings/2026-03-02")
    assert r.json() == {"count": 2 * SLOTS, "taken": 2 * SLOTS}
    r = await team.admin("GET", f"/{app_id}")  # the operator sees the bookings and the counter in the usage
    assert r.json()["quotas"]["storage_keys"] == 2 * SLOTS + 1, r.text


async def test_a_message_inside_a_transaction_is_refused_and_nothing_is_written(
    team: Team, tmp_path: Path
) -> None:
    folder = write_probe(tmp_path, new_app_id("dbtx"))
    app_id, _ = await team.ship(folder)
    resident = await login(team.client)
    r = await call(team.client, resident, app_id, "POST", "/db/notify-in-transaction")
    assert (r.status_code, r.json()["code"]) == (403, "capability.denied"), r.text
    assert "inside ctx.db.transaction()" in r.json()["detail"]
    r = await call(team.client, resident, app_id, "GET", "/db/bookings/2026-03-03")
    assert r.json() == {"count": 0, "taken": 0}
    r = await team.client.get("/v1/me/inbox", headers=resident.headers)
    assert (r.status_code, r.json()) == (200, []), r.text


async def test_an_index_dropped_and_declared_again_finds_every_document(team: Team, tmp_path: Path) -> None:
    """A release that drops an index, then one that declares it again: documents written in between are found,
    and one whose value that index cannot hold is left out (the index is rebuilt on its first query)."""
    app_id = new_app_id("dbidx")
    caps = team.client.app.state.platform.caps

    async def release(version: str, indexes: str) -> None:
        folder = write_probe(tmp_path, app_id, version=version)
        manifest = folder / "miniapp.toml"
        manifest.write_text(manifest.read_text().replace('["day", "user_id", ["doctor_id", "day"]]', indexes))
        await team.ship(folder)

    async def db(version: str, operation: str, **kwargs: object) -> Any:
        info = CallInfo(app_id=app_id, version=version, call_id=1)
        return await caps.handle(info, "db", operation, [], dict(kwargs))

    async def on_day(version: str) -> list[str]:
        page = await db(version, "find", collection="bookings", where={"day": "2026-05-01"})
        return [record.id for record in page.items]

    await release("1.0.0", '["day"]')
    await db("1.0.0", "insert", collection="bookings", id="a", value={"day": "2026-05-01"})
    assert await on_day("1.0.0") == ["a"]  # the index is built

    await release("1.0.1", '["user_id"]')  # `day` no longer declared by any live version
    await db("1.0.1", "insert", collection="bookings", id="b", value={"day": "2026-05-01"})
    await db("1.0.1", "update", collection="bookings", id="a", value={"day": ["not", "indexable"]})
    await db("1.0.1", "insert", collection="bookings", id="c", value={"day": "2026-05-01"})

    await release("1.0.2", '["day", "user_id"]')
    assert await on_day("1.0.2") == ["b", "c"]


async def test_an_app_never_sees_nor_changes_another_apps_documents(team: Team, tmp_path: Path) -> None:
    """Two apps declare the same collection and index: each one's documents, counts and groups are its own,
    and the other's document ids (even one it also uses) reach nothing of the first."""
    caps = team.client.app.state.platform.caps
    ours, theirs = new_app_id("dbours"), new_app_id("dbtheirs")
    for app_id in (ours, theirs):
        await team.ship(write_probe(tmp_path, app_id))

    async def db(app_id: str, operation: str, **kwargs: object) -> Any:
        info = CallInfo(app_id=app_id, version="1.0.0", call_id=1)
        try:
            return await caps.handle(info, "db", operation, [], dict(kwargs))
        except Exception as exc:  # the refusals are yima_sdk errors with their codes
            return str(getattr(exc, "code", type(exc).__name__))

    day = {"day": "2026-06-01"}
    secret = await db(
        theirs, "insert", collection="bookings", value={**day, "user_id": "u-theirs", "fee": 700}
    )
    await db(theirs, "insert", collection="bookings", id="shared", value={**day, "fee": 900})
    # the same id in our app is a document of our own, not a conflict with theirs
    shared = await db(ours, "insert", collection="bookings", id="shared", value={**day, "fee": 100})
    assert (shared.id, shared.version) == ("shared", 1)

    page = await db(ours, "find", collection="bookings", where=day)
    assert [(r.id, r.value["fee"]) for r in page.items] == [("shared", 100)]
    assert (await db(ours, "find", collection="bookings", where={"user_id": "u-theirs"})).items == []
    assert await db(ours, "count", collection="bookings", where=day) == 1
    groups = await db(ours, "aggregate", collection="bookings", group_by="day", sum="fee")
    assert [(g.key, g.count, g.sum) for g in groups] == [("2026-06-01", 1, 100)]
    assert await db(ours, "get", collection="bookings", id=secret.id) is None
    assert (await db(ours, "get", collection="bookings", id="shared")).value["fee"] == 100

    # their document's id reaches nothing of theirs: no update, no delete, no version check against it
    refused = await db(ours, "update", collection="bookings", id=secret.id, value={**day, "fee": 0})
    assert refused == "storage.version_conflict"
    assert await db(ours, "delete", collection="bookings", id=secret.id) is False
    await db(ours, "update", collection="bookings", id="shared", value={**day, "fee": 1}, expected_version=1)
    assert await db(ours, "delete", collection="bookings", id="shared") is True

    left = await db(theirs, "find", collection="bookings", where=day)
    assert sorted((r.id, r.value["fee"], r.version) for r in left.items) == sorted(
        [(secret.id, 700, 1), ("shared", 900, 1)]
    )
    assert await db(theirs, "count", collection="bookings", where=day) == 2
    groups = await db(theirs, "aggregate", collection="bookings", group_by="day", sum="fee")
    assert [(g.key, g.count, g.sum) for g in groups] == [("2026-06-01", 2, 1600)]
    assert await db(ours, "count", collection="bookings", where=day) == 0
