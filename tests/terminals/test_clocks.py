"""Terminal clocks (issue 17): the server's time signed for a terminal's sync, its drift in the operator's list,
and online scans whose scanned_at is off by more than the tolerance flagged."""

from __future__ import annotations

import asyncio
import base64
import secrets
import time

import pytest
from yima_sdk.terminal import HttpTransport, Terminal, TerminalCredentials, TransportError, verify_server_time
from yima_sdk.trust import TrustListError

from tests.conftest import login_with_role, serve_tcp
from tests.credentials.helpers import ankang_payload, register_terminal, terminal_token, verified_resident


async def test_a_terminal_learns_the_servers_signed_time_and_the_operator_sees_its_drift(client):
    operator = await login_with_role(client, "operator")
    terminal_id, key = await register_terminal(client, operator, kind="bus")
    headers = await terminal_token(client, terminal_id, key)
    listed = (await client.get("/v1/admin/terminals", headers=operator.headers)).json()
    assert "clock_offset_ms" not in next(t for t in listed if t["id"] == terminal_id)  # never synced
    nonce = secrets.token_urlsafe(16)
    slow = int(time.time() * 1000) - 70_000  # this terminal's clock runs 70 s slow
    before = time.time()
    r = await client.get(f"/v1/terminal/time?nonce={nonce}&terminal_time={slow}", headers=headers)
    after = time.time()
    assert r.status_code == 200 and r.headers["cache-control"] == "no-store", r.text
    roots = await client.app.state.credentials.trust.root_public_keys()
    server_ms = verify_server_time(r.content, roots, nonce)  # what the SDK's Terminal.sync_clock checks
    assert before * 1000 - 1 <= server_ms <= after * 1000 + 1
    with pytest.raises(TrustListError) as other:
        verify_server_time(r.content, roots, secrets.token_urlsafe(16))
    assert other.value.code == "time.nonce_mismatch"
    listed = (await client.get("/v1/admin/terminals", headers=operator.headers)).json()
    mine = next(t for t in listed if t["id"] == terminal_id)
    assert -75_000 < mine["clock_offset_ms"] < -69_000 and mine["clock_checked_at"]


async def test_the_time_needs_a_terminal_and_a_real_nonce(client):
    operator = await login_with_role(client, "operator")
    terminal_id, key = await register_terminal(client, operator, kind="bus")
    headers = await terminal_token(client, terminal_id, key)
    assert (await client.get("/v1/terminal/time?nonce=" + "a" * 22)).status_code == 401
    for query in ("", "?nonce=short", "?nonce=" + "%2F" * 20, f"?nonce={'a' * 22}&terminal_time=-5"):
        r = await client.get("/v1/terminal/time" + query, headers=headers)
        assert r.status_code == 400 and r.json()["code"] == "request.invalid", (query, r.text)


async def test_an_online_scan_with_a_clock_off_beyond_the_tolerance_is_flagged_and_stored(client):
    operator = await login_with_role(client, "operator")
    resident, _ = await verified_resident(client)
    payload = await ankang_payload(client, resident)
    answers, terminal_ids = [], []
    for off_s in (-3600, 5, 120):  # three clinic doors (the same code twice at one door is a repeat)
        terminal_id, key = await register_terminal(client, operator, kind="clinic")
        terminal_ids.append(terminal_id)
        r = await client.post(
            "/v1/scans",
            json={"payload": payload, "scanned_at": int((time.time() + off_s) * 1000)},
            headers=await terminal_token(client, terminal_id, key),
        )
        assert r.status_code == 200, r.text
        answers.append(r.json())
    # Decided by the server's clock all the same; the clock's offset is shown where it is beyond 30 s.
    assert [a["result"] for a in answers] == ["accept"] * 3
    hour, fine, ahead = (a.get("clock_offset_ms") for a in answers)
    assert -3_605_000 < hour < -3_595_000 and fine is None and 115_000 < ahead < 125_000
    async with client.app.state.core.db.connection() as conn:
        stored = await conn.fetch(
            "SELECT id::text, clock_offset_ms FROM scans WHERE terminal_id = ANY($1::text[])", terminal_ids
        )
    assert {r["id"]: r["clock_offset_ms"] for r in stored} == {
        a["scan_id"]: a.get("clock_offset_ms") for a in answers
    }


@pytest.mark.slow
async def test_a_slow_terminal_syncs_over_http_and_stamps_scans_with_the_servers_time(settings, tmp_path):
    """The SDK's Terminal, 50 s slow, over its HTTP transport against a real server: `refresh` learns the signed
    time, the operator's list shows the drift, and the uploaded scan carries the server's time."""
    async with serve_tcp(settings) as client:
        operator = await login_with_role(client, "operator")
        resident, _ = await verified_resident(client)
        terminal_id, key = await register_terminal(client, operator, kind="clinic")
        info = (await client.get("/v1/trust-list/info")).json()
        roots = {kid: base64.urlsafe_b64decode(k + "==") for kid, k in info["root_public_keys"].items()}

        def slow() -> float:
            return time.time() - 50

        terminal = Terminal(
            root_public_keys=roots,
            db_path=str(tmp_path / "terminal.sqlite"),
            clock=slow,
            clock_source="rtc",
            transport=HttpTransport(str(client.base_url), TerminalCredentials(terminal_id, key), clock=slow),
        )
        run = asyncio.to_thread  # urllib blocks; the server runs on this event loop
        try:
            await run(terminal.refresh)
            assert 49 < terminal.clock_offset_s < 51
            listed = (await client.get("/v1/admin/terminals", headers=operator.headers)).json()
            assert -51_000 < next(t for t in listed if t["id"] == terminal_id)["clock_offset_ms"] < -49_000
            decision = await run(terminal.scan, await ankang_payload(client, resident))
            assert decision.result == "accept"
            assert await run(terminal.upload_pending) == 1
        finally:
            await run(terminal.close)
        async with client.app.state.core.db.connection() as conn:
            lag = await conn.fetchval(
                "SELECT extract(epoch FROM received_at - scanned_at) FROM scans WHERE terminal_id = $1",
                terminal_id,
            )
        assert abs(lag) < 5  # stamped by the corrected clock (to within the round trip), not 50 s in the past


async def test_the_signed_time_is_public_and_rate_limited_per_address(client):
    """A terminal too far off to sign in still learns the time: no token needed, but an address may only ask
    so often."""
    from server.terminals.registry import PUBLIC_TIME_PER_MINUTE

    roots_info = (await client.get("/v1/trust-list/info")).json()
    roots = {kid: base64.urlsafe_b64decode(k + "==") for kid, k in roots_info["root_public_keys"].items()}
    nonce = secrets.token_urlsafe(16)
    r = await client.get(f"/v1/terminal/public-time?nonce={nonce}")
    assert r.status_code == 200, r.text
    assert abs(verify_server_time(r.content, roots, nonce) / 1000 - time.time()) < 5
    assert (await client.get("/v1/terminal/public-time?nonce=short")).status_code == 400
    try:
        statuses = [
            (await client.get(f"/v1/terminal/public-time?nonce={secrets.token_urlsafe(16)}")).status_code
            for _ in range(PUBLIC_TIME_PER_MINUTE)
        ]
        assert statuses[-1] == 429 and 200 in statuses
    finally:  # the test client's address is loopback, like every other test's server: leave it its minute
        await client.app.state.core.cache.delete("rl:terminal_time:addr:127.0.0.1")


@pytest.mark.slow
async def test_a_terminal_ten_minutes_slow_signs_in_after_syncing_and_accepts_a_valid_code(
    settings, tmp_path
):
    """Its one-minute client assertion would be refused (`terminal.assertion_time`): the SDK learns the signed
    time without a token first, signs in with the corrected time, and a valid code is accepted and uploaded."""
    async with serve_tcp(settings) as client:
        operator = await login_with_role(client, "operator")
        resident, _ = await verified_resident(client)
        terminal_id, key = await register_terminal(client, operator, kind="clinic")
        info = (await client.get("/v1/trust-list/info")).json()
        roots = {kid: base64.urlsafe_b64decode(k + "==") for kid, k in info["root_public_keys"].items()}

        def slow() -> float:
            return time.time() - 600

        transport = HttpTransport(str(client.base_url), TerminalCredentials(terminal_id, key), clock=slow)
        run = asyncio.to_thread  # urllib blocks; the server runs on this event loop
        with pytest.raises(TransportError, match=r"terminal\.assertion_time"):
            await run(transport.fetch_revocations, 0, 0)  # alone, without a Terminal to sync its clock
        terminal = Terminal(
            root_public_keys=roots,
            db_path=str(tmp_path / "terminal.sqlite"),
            clock=slow,
            clock_source="rtc",
            transport=transport,
        )
        try:
            await run(terminal.refresh)
            assert 599 < terminal.clock_offset_s < 601
            decision = await run(terminal.scan, await ankang_payload(client, resident))
            assert (decision.result, decision.reason) == ("accept", None)
            assert await run(terminal.upload_pending) == 1
            await run(terminal.refresh)  # signed in now: the server notes the terminal's clock
            listed = (await client.get("/v1/admin/terminals", headers=operator.headers)).json()
            assert -601_000 < next(t for t in listed if t["id"] == terminal_id)["clock_offset_ms"] < -599_000
        finally:
            await run(terminal.close)
