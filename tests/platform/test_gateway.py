"""The gateway and capabilities as residents and apps see them: app-scoped ids, consent without prompt loops,
storage CAS and bounded counters, isolation between apps, quotas, size limits, inbox and payments."""

from __future__ import annotations

import asyncio
import secrets
from pathlib import Path

import hiredis
import pytest
from yima_sdk import CounterOutOfRange

from sandbox.capabilities import CallInfo
from server.cache import RedisCache
from server.cache._pipelined import PipelinedCommands
from tests.conftest import login, valid_id_number
from tests.platform.conftest import Team, call, new_app_id, write_probe

# on both loops (tests/event_loops.py): the gateway over the bridge
pytestmark = pytest.mark.both_loops


async def test_app_scoped_ids_are_stable_per_app_and_differ_across_apps(team: Team, tmp_path: Path) -> None:
    first, _ = await team.ship(write_probe(tmp_path, new_app_id("one")))
    second, _ = await team.ship(write_probe(tmp_path, new_app_id("two")))
    alice, bob = await login(team.client), await login(team.client)

    async def uid(who, app_id: str) -> str:  # type: ignore[no-untyped-def]
        return str((await call(team.client, who, app_id, "GET", "/whoami")).json()["user_id"])

    a1, a1_again, a2, b1 = (
        await uid(alice, first),
        await uid(alice, first),
        await uid(alice, second),
        await uid(bob, first),
    )
    assert a1 == a1_again and a1 != a2 and a1 != b1
    assert a1 != str(alice.account_id) and a1.startswith("u_") and len(a1) == 28


async def test_the_callers_id_needs_no_round_trip_out_of_the_sandbox(team: Team, tmp_path: Path) -> None:
    # the host sends the caller's app-scoped id with the call; `ctx.user.id()` answers it inside the worker
    app_id, version = await team.ship(write_probe(tmp_path, new_app_id("who")))
    alice = await login(team.client)
    r = await call(team.client, alice, app_id, "GET", "/whoami")
    assert r.status_code == 200 and r.json()["user_id"].startswith("u_"), r.text
    metrics = team.client.app.state.platform.runtime.host.metrics()[f"{app_id}@{version}"]
    assert metrics["ok"] >= 1 and "capability.user" not in metrics, metrics


async def test_consent_denied_is_the_apps_clear_answer_then_grant_and_revoke(
    team: Team, tmp_path: Path
) -> None:
    app_id, _ = await team.ship(write_probe(tmp_path, new_app_id()))
    resident = await login(team.client)
    r = await team.client.put(
        "/v1/me/identity",
        json={
            "name": "王小明",
            "id_number": valid_id_number(birth="19500302", seq=f"{secrets.randbelow(1000):03d}"),
        },
        headers=resident.headers,
    )
    assert r.status_code == 200, r.text
    # never asked: the app answers its own clear denial at once (no waiting, no prompt)
    r = await call(team.client, resident, app_id, "GET", "/age")
    assert r.status_code == 403 and r.json()["code"] == "consent.denied"
    # an app that does not catch it: the gateway maps the app's error to 403 consent.denied
    r = await call(team.client, resident, app_id, "GET", "/age-uncaught")
    assert r.status_code == 403 and r.json()["code"] == "consent.denied"
    assert r.json()["extra"]["app_id"] == app_id
    # refused: recorded, so the catalog says "refused" and the phone does not ask again
    r = await team.client.put(
        f"/v1/me/consents/{app_id}/birth_date", json={"granted": False}, headers=resident.headers
    )
    assert r.status_code == 200 and r.json()["granted"] is False
    catalog = (await team.client.get("/v1/miniapps", headers=resident.headers)).json()
    assert next(e for e in catalog if e["app_id"] == app_id)["scopes"][0]["state"] == "refused"
    assert (await call(team.client, resident, app_id, "GET", "/age")).status_code == 403
    # granted
    await team.client.put(
        f"/v1/me/consents/{app_id}/birth_date", json={"granted": True}, headers=resident.headers
    )
    r = await call(team.client, resident, app_id, "GET", "/age")
    assert r.status_code == 200 and r.json() == {"birth_date": "1950-03-02"}
    # revoked: denied from the next request on
    r = await team.client.delete(f"/v1/me/consents/{app_id}/birth_date", headers=resident.headers)
    assert r.status_code == 204
    assert (await call(team.client, resident, app_id, "GET", "/age")).json()["code"] == "consent.denied"
    listed = (await team.client.get("/v1/me/consents", headers=resident.headers)).json()
    assert {"app_id": app_id, "scope": "birth_date", "granted": False} == {
        k: v for k, v in next(c for c in listed if c["app_id"] == app_id).items() if k != "decided_at"
    }
    r = await team.client.put(
        f"/v1/me/consents/{app_id}/phone_masked", json={"granted": True}, headers=resident.headers
    )
    assert r.status_code == 422 and r.json()["code"] == "consent.unknown_scope"


async def test_storage_cas_listing_and_isolation_between_apps(team: Team, tmp_path: Path) -> None:
    mine, _ = await team.ship(write_probe(tmp_path, new_app_id("mine")))
    theirs, _ = await team.ship(write_probe(tmp_path, new_app_id("theirs")))
    resident = await login(team.client)
    r = await call(
        team.client, resident, mine, "PUT", "/docs/shelf-1", json={"value": {"n": 1}, "expected": 0}
    )
    assert r.json() == {"version": 1}
    r = await call(
        team.client, resident, mine, "PUT", "/docs/shelf-1", json={"value": {"n": 2}, "expected": 0}
    )
    assert r.status_code == 409 and r.json()["code"] == "storage.version_conflict"
    r = await call(
        team.client, resident, mine, "PUT", "/docs/shelf-1", json={"value": {"n": 2}, "expected": 1}
    )
    assert r.json() == {"version": 2}
    r = await call(
        team.client, resident, mine, "PUT", "/docs/shelf-1", json={"value": {"n": 3}, "expected": 1}
    )
    assert r.status_code == 409  # a stale version loses
    assert (await call(team.client, resident, mine, "GET", "/docs/shelf-1")).json() == {
        "doc": {"value": {"n": 2}, "version": 2}
    }
    for key in ("shelf-2", "shelf-3", "other"):
        await call(team.client, resident, mine, "PUT", f"/docs/{key}", json={"value": key})
    page = (await call(team.client, resident, mine, "GET", "/list?prefix=shelf-")).json()
    assert page["keys"] == ["shelf-1", "shelf-2"] and page["cursor"]
    rest = (
        await call(team.client, resident, mine, "GET", f"/list?prefix=shelf-&cursor={page['cursor']}")
    ).json()
    assert rest == {"keys": ["shelf-3"], "cursor": None}
    # the same key in another app is another document: nothing leaks either way
    assert (await call(team.client, resident, theirs, "GET", "/docs/shelf-1")).json() == {"doc": None}
    assert (await call(team.client, resident, theirs, "GET", "/list")).json()["keys"] == []


async def test_bounded_counter_sells_exactly_its_capacity_under_100_concurrent_bookings(
    team: Team, tmp_path: Path
) -> None:
    app_id, _ = await team.ship(write_probe(tmp_path, new_app_id()))
    residents = [await login(team.client) for _ in range(4)]
    # through the gateway: 100 bookings, 16 in flight at a time (the test client's Redis pool is small)
    gate = asyncio.Semaphore(16)

    async def book(i: int):  # type: ignore[no-untyped-def]
        async with gate:
            # 16 calls queue for the app's one worker; on a loaded machine the last may wait past the app's 2 s
            # and answer busy, before any worker ran it. A client tries again, as the answer says.
            for _ in range(20):
                r = await call(team.client, residents[i % 4], app_id, "POST", "/book")
                if r.status_code != 503 or r.json()["code"] != "miniapp.busy":
                    break
            return r

    answers = await asyncio.gather(*(book(i) for i in range(100)))
    codes = [r.status_code for r in answers]
    assert codes.count(200) == 30 and codes.count(409) == 70, codes
    assert sorted(r.json()["taken"] for r in answers if r.status_code == 200) == list(range(1, 31))
    # and the capability itself with all 100 at once, as many sandbox workers would send them
    caps = team.client.app.state.platform.caps
    info = CallInfo(app_id=app_id, version="1.0.0", call_id=1, user_id=None)
    results = await asyncio.gather(
        *(
            caps.handle(info, "storage", "counter_add", [], {"name": "slots:day2", "delta": 1, "max": 30})
            for _ in range(100)
        ),
        return_exceptions=True,
    )
    assert sorted(r for r in results if isinstance(r, int)) == list(range(1, 31))
    assert all(isinstance(r, CounterOutOfRange) for r in results if not isinstance(r, int))
    assert await caps.handle(info, "storage", "counter_get", [], {"name": "slots:day2"}) == 30


async def test_quotas_answer_429_with_a_code(team: Team, tmp_path: Path) -> None:
    app_id, _ = await team.ship(write_probe(tmp_path, new_app_id()))
    r = await team.admin(
        "PUT", f"/{app_id}/quotas", json={"resident_calls_per_minute": 3, "calls_per_minute": 5}
    )
    assert r.status_code == 200 and r.json()["quotas"]["resident_calls_per_minute"] == 3
    alice, bob = await login(team.client), await login(team.client)
    codes = [(await call(team.client, alice, app_id, "GET", "/whoami")).status_code for _ in range(4)]
    assert codes == [200, 200, 200, 429]
    r = await call(team.client, alice, app_id, "GET", "/whoami")
    assert r.json()["code"] == "miniapp.quota_resident" and int(r.headers["retry-after"]) >= 1
    # the app's own rate (5/min) counts every resident: bob gets through until it is used up
    assert (await call(team.client, bob, app_id, "GET", "/whoami")).status_code == 429
    assert (await call(team.client, bob, app_id, "GET", "/whoami")).json()["code"] == "miniapp.quota_app"


async def test_calls_go_through_while_redis_is_loading_its_data(team: Team, tmp_path: Path) -> None:
    """Redis restarted and still loading its data answers the quota count with -LOADING: calls are counted in
    memory meanwhile (as when Redis is down), not refused with a 500."""
    app_id, _ = await team.ship(write_probe(tmp_path, new_app_id()))
    alice = await login(team.client)

    async def loading(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        parser = hiredis.Reader()
        while data := await reader.read(65536):
            parser.feed(data)
            while parser.gets() is not False:
                writer.write(b"-LOADING Redis is loading the dataset in memory\r\n")

    server = await asyncio.start_server(loading, "127.0.0.1", 0)
    cache = team.client.app.state.core.cache
    assert isinstance(cache, RedisCache) and isinstance(cache._counting, PipelinedCommands)
    counting = cache._counting
    cache._counting = PipelinedCommands(f"redis://127.0.0.1:{server.sockets[0].getsockname()[1]}/0")
    try:
        r = await call(team.client, alice, app_id, "GET", "/whoami")
        assert r.status_code == 200, r.text
    finally:
        cache._counting.close()
        cache._counting = counting
        server.close()


async def test_request_and_response_size_limits(team: Team, tmp_path: Path) -> None:
    app_id, _ = await team.ship(write_probe(tmp_path, new_app_id()))
    resident = await login(team.client)
    r = await call(team.client, resident, app_id, "POST", "/echo", content=b"a" * 1000)
    assert r.json() == {"length": 1000}
    r = await call(team.client, resident, app_id, "POST", "/echo", content=b"a" * (64 * 1024 + 1))
    assert r.status_code == 413 and r.json()["code"] == "miniapp.request_too_large"
    assert (await call(team.client, resident, app_id, "GET", "/big?n=1000")).content == b"x" * 1000
    r = await call(team.client, resident, app_id, "GET", "/big?n=300000")
    assert r.status_code == 502 and r.json()["code"] == "miniapp.response_too_large"
    r = await call(team.client, resident, app_id, "GET", "/nowhere")
    assert r.status_code == 404 and r.json()["code"] == "route.not_found"  # the app's own 404 answer
    # ...in the app's media type, which the OpenAPI document allows there besides the gateway's problem+json
    assert r.headers["content-type"] == "application/json"
    document = team.client.app.openapi_schema.to_schema()
    assert (
        "*/*" in document["paths"]["/v1/miniapps/{app_id}/api/{path}"]["get"]["responses"]["404"]["content"]
    )


async def test_notify_reaches_the_inbox_and_payments_wait_for_the_residents_confirmation(
    team: Team, tmp_path: Path
) -> None:
    app_id, _ = await team.ship(write_probe(tmp_path, new_app_id()))
    resident = await login(team.client)
    r = await call(team.client, resident, app_id, "POST", "/notify")
    assert r.status_code == 200 and r.json()["message"].startswith("msg_")
    inbox = (await team.client.get("/v1/me/inbox", headers=resident.headers)).json()
    assert inbox[0]["title"] == "Your book is ready" and inbox[0]["app_id"] == app_id
    r = await call(team.client, resident, app_id, "POST", "/charge")
    assert r.status_code == 200 and r.json()["status"] == "pending_confirmation"
    again = await call(team.client, resident, app_id, "POST", "/charge")
    assert again.json()["id"] == r.json()["id"]  # same idempotency key, same payment
    pending = (await team.client.get("/v1/me/payments", headers=resident.headers)).json()
    assert [(p["amount_fen"], p["status"]) for p in pending] == [(200, "pending_confirmation")]
    number = r.json()["id"].removeprefix("pay_")
    other = await login(team.client)
    assert (
        await team.client.post(f"/v1/me/payments/{number}/confirm", headers=other.headers)
    ).status_code == 404
    r2 = await team.client.post(f"/v1/me/payments/{number}/decline", headers=resident.headers)
    assert r2.status_code == 200 and r2.json()["status"] == "declined"
    status = await call(team.client, resident, app_id, "GET", f"/charge/{r.json()['id']}")
    assert status.json() == {"status": "declined"}
    r3 = await team.client.post(f"/v1/me/payments/{number}/confirm", headers=resident.headers)
    assert r3.status_code == 409 and r3.json()["code"] == "payment.already_decided"


async def test_residents_opening_an_app_at_once_are_each_recorded(team: Team, tmp_path: Path) -> None:
    """First uses arriving together share one insert (runtime/group_write.py): every call answers, and each
    resident's use of the app is in PostgreSQL once their call answered (what other workers and jobs find)."""
    app_id, _ = await team.ship(write_probe(tmp_path, new_app_id("burst")))
    residents = [await login(team.client) for _ in range(12)]
    answers = await asyncio.gather(*(call(team.client, r, app_id, "GET", "/whoami") for r in residents))
    assert [a.status_code for a in answers] == [200] * 12, [a.text for a in answers]
    async with team.client.app.state.core.db.connection() as conn:
        stored = await conn.fetch(
            "SELECT app_user_id, account_id FROM miniapp_users WHERE app_id = $1", app_id
        )
    expected = {(a.json()["user_id"], r.account_id) for a, r in zip(answers, residents, strict=True)}
    assert {(row["app_user_id"], row["account_id"]) for row in stored} == expected
