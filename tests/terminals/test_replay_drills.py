"""Replay drills (issue 17): a code spent once is spent once anywhere, online or offline, whatever Redis went
through, and a scan whose record was not stored has not spent its code."""

from __future__ import annotations

import asyncio
import contextlib
import time

import redis.asyncio as aioredis

from tests.conftest import REDIS_URL, cut_while_it_waits, login_with_role
from tests.credentials.helpers import (
    ankang_payload,
    register_terminal,
    scan,
    terminal_token,
    verified_resident,
)
from tests.terminals.test_batch import _record, _RecordingSettlement, _ride_holder, _upload


@contextlib.asynccontextmanager
async def _recording_settlement(client):
    """The offline-settlement port replaced by one that records what it is asked to charge."""
    settlement = _RecordingSettlement()
    scans = client.app.state.terminals.scans.offline
    previous, scans.settlement = scans.settlement, settlement
    try:
        yield settlement
    finally:
        scans.settlement = previous


async def _spent_in_postgres(client, scan_id: str) -> bool:
    async with client.app.state.core.db.connection() as conn:
        return bool(
            await conn.fetchval("SELECT count(*) FROM scan_replay_claims WHERE scan_id = $1", scan_id)
        )


async def _a_rider_and_two_buses(client):
    """A resident with a fresh ride code and her Ankang code, and the tokens of two buses."""
    operator = await login_with_role(client, "operator")
    resident, _ = await verified_resident(client)
    holder = await _ride_holder(client, resident.account_id)
    buses = []
    for _ in range(2):
        terminal_id, key = await register_terminal(client, operator, kind="bus")
        buses.append(await terminal_token(client, terminal_id, key))
    return holder.ride_code(time.time()), await ankang_payload(client, resident), buses


async def test_a_ride_code_accepted_online_is_replayed_offline_and_never_charged(client):
    ride, _, (bus_a, bus_b) = await _a_rider_and_two_buses(client)
    online = await scan(client, bus_a, ride)
    assert online["result"] == "accept"
    assert await _spent_in_postgres(client, online["scan_id"])
    async with _recording_settlement(client) as settlement:
        offline = await _upload(client, bus_b, [_record(ride, amount=200)])
    assert offline == [("rejected", "scan.replayed")]
    assert settlement.calls == []


async def test_a_code_accepted_in_an_offline_upload_is_replayed_online(client):
    ride, payload, (bus_a, bus_b) = await _a_rider_and_two_buses(client)
    async with _recording_settlement(client):
        offline = await _upload(client, bus_a, [_record(ride, amount=200), _record(payload)])
    assert offline == [("accepted", None), ("accepted", None)]
    assert (await scan(client, bus_b, ride))["reason"] == "scan.replayed"
    assert (await scan(client, bus_b, payload))["reason"] == "scan.replayed"


async def test_a_code_the_scene_refused_offline_is_not_spent(client):
    """As online: a yellow code refused by a bus (green only) in an upload still passes at a pharmacy."""
    operator = await login_with_role(client, "operator")
    resident, id_number = await verified_resident(client)
    authority = await login_with_role(client, "health_authority")
    r = await client.post(
        "/v1/authority/health-status",
        json={"id_number": id_number, "color": "yellow", "reason": "test"},
        headers=authority.headers,
    )
    assert r.status_code == 200, r.text
    payload = await ankang_payload(client, resident)
    bus_id, bus_key = await register_terminal(client, operator, kind="bus")
    refused = await _upload(client, await terminal_token(client, bus_id, bus_key), [_record(payload)])
    assert refused == [("rejected", "policy.color_not_allowed")]
    _, till = await _terminal(client, operator, "pharmacy")
    assert (await scan(client, till, payload))["result"] == "accept"
    assert (await scan(client, till, payload))["reason"] == "scan.replayed"


async def test_a_claim_survives_losing_every_redis_key(client, settings):
    """Redis killed and restarted empty (or restored onto a fresh one): the durable claim still refuses the code."""
    operator = await login_with_role(client, "operator")
    resident, _ = await verified_resident(client)
    _, till = await _terminal(client, operator, "pharmacy")
    payload = await ankang_payload(client, resident)
    assert (await scan(client, till, payload))["result"] == "accept"
    redis = aioredis.Redis.from_url(REDIS_URL)
    try:
        forgotten = [key async for key in redis.scan_iter(match=f"{settings.redis_namespace}scan:*")]
        if forgotten:
            await redis.delete(*forgotten)
    finally:
        await redis.aclose()
    _, other_till = await _terminal(client, operator, "pharmacy")
    assert (await scan(client, till, payload))["reason"] == "scan.replayed"
    assert (await scan(client, other_till, payload))["reason"] == "scan.replayed"


async def test_a_scan_whose_record_was_not_stored_has_not_spent_its_code(client, database_url):
    """The store fails after the code passed every check (the writer's connection dies while it waits): the
    terminal is told 503 with Retry-After, and the scan sent again is accepted, once."""
    operator = await login_with_role(client, "operator")
    resident, _ = await verified_resident(client)
    terminal_id, till = await _terminal(client, operator, "pharmacy")
    payload = await ankang_payload(client, resident)
    body = {"payload": payload, "scanned_at": int(time.time() * 1000)}
    # The writer's statement waits on the scan log, and its backend is ended there.
    failed = await cut_while_it_waits(
        database_url,
        "LOCK TABLE scans IN SHARE MODE",
        (),
        "scans",
        lambda: client.post("/v1/scans", json=body, headers=till),
    )
    assert failed.status_code == 503, failed.text
    assert failed.json()["code"] == "service.db_unavailable" and failed.headers["retry-after"] == "1"
    again = await client.post("/v1/scans", json=body, headers=till)
    assert again.status_code == 200 and again.json()["result"] == "accept", again.text
    assert (await scan(client, till, payload))["reason"] == "scan.replayed"
    async with client.app.state.core.db.connection() as conn:
        stored = await conn.fetch(
            "SELECT result, reason FROM scans WHERE terminal_id = $1 ORDER BY received_at", terminal_id
        )
    assert [(r["result"], r["reason"]) for r in stored] == [("accept", None), ("reject", "scan.replayed")]


async def test_concurrent_scans_of_one_code_on_two_terminals_accept_it_once(client):
    operator = await login_with_role(client, "operator")
    resident, _ = await verified_resident(client)
    tills = [(await _terminal(client, operator, "pharmacy"))[1] for _ in range(4)]
    payload = await ankang_payload(client, resident)
    answers = await asyncio.gather(*(scan(client, till, payload) for till in tills for _ in range(3)))
    assert sorted(a["result"] for a in answers) == ["accept"] + ["reject"] * 11
    assert {a["reason"] for a in answers if a["result"] == "reject"} == {"scan.replayed"}


async def test_a_reupload_after_a_cut_answers_each_record_with_its_original_verdict(client):
    """The upload committed but its answer was lost: the terminal sends the same records again (with one new
    record) and learns, for each, what the server decided the first time."""
    operator = await login_with_role(client, "operator")
    resident, _ = await verified_resident(client)
    terminal_id, key = await register_terminal(client, operator, kind="clinic")
    headers = await terminal_token(client, terminal_id, key)
    good = await ankang_payload(client, resident)
    forged = good[:-6] + ("AAAAAA" if not good.endswith("AAAAAA") else "BBBBBB")
    cut = [_record(good), _record(forged), _record("garbage")]
    first = await _upload(client, headers, cut)
    assert first == [
        ("accepted", None),
        ("rejected", "credential.bad_signature"),
        ("rejected", "credential.malformed"),
    ]
    later = _record(await ankang_payload(client, resident))
    assert await _upload(client, headers, [*cut, later, cut[1]]) == [*first, ("accepted", None), first[1]]


async def _terminal(client, operator, kind):
    terminal_id, key = await register_terminal(client, operator, kind=kind)
    return terminal_id, await terminal_token(client, terminal_id, key)
