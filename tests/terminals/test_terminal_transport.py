"""yima_sdk.terminal's HTTP transport against a real server: a terminal signs itself in, stays signed in across
token lifetimes, signs in again after a 401, and keeps deciding scans offline while the server refuses it."""

from __future__ import annotations

import asyncio
import base64
import time

import pytest
import redis.asyncio as redis
from yima_sdk.terminal import HttpTransport, Terminal, TerminalCredentials, TransportError

from server.settings import Settings
from tests.conftest import REDIS_URL, AppClient, login_with_role, serve_tcp
from tests.credentials.helpers import ankang_payload, register_terminal, verified_resident

# Short enough that the terminal's clock can run two lifetimes ahead of the server's while its client assertions
# (exp at most 5 minutes ahead of the server) are still accepted.
TOKEN_TTL_S = 100


async def _other(client: AppClient):
    resident, _ = await verified_resident(client)
    return resident


async def _tokens_issued(settings: Settings, terminal_id: str) -> int:
    """Assertions the server accepted for this terminal: each single-use jti it remembers is one token issued."""
    r = redis.from_url(REDIS_URL)
    try:
        return len([k async for k in r.scan_iter(f"{settings.redis_namespace}terminal_jti:{terminal_id}:*")])
    finally:
        await r.aclose()


@pytest.mark.slow
async def test_terminal_stays_signed_in_across_token_lifetimes_and_after_a_401(settings, tmp_path):
    async with serve_tcp(settings, access_token_ttl_s=TOKEN_TTL_S) as client:
        operator = await login_with_role(client, "operator")
        resident, _ = await verified_resident(client)
        terminal_id, key = await register_terminal(client, operator, kind="clinic")
        info = (await client.get("/v1/trust-list/info")).json()
        roots = {kid: base64.urlsafe_b64decode(k + "==") for kid, k in info["root_public_keys"].items()}
        ahead = [0.0]  # the terminal's clock: the real one (or one held still), moved ahead by the test
        held: list[float | None] = [None]

        def clock() -> float:
            return (held[0] if held[0] is not None else time.time()) + ahead[0]

        transport = HttpTransport(
            str(client.base_url), TerminalCredentials(terminal_id, key), clock=clock, refresh_margin_s=10
        )
        terminal = Terminal(
            root_public_keys=roots,
            db_path=str(tmp_path / "terminal.sqlite"),
            clock=clock,
            clock_source="ntp",
            transport=transport,
        )
        run = asyncio.to_thread  # urllib blocks; the server runs on this event loop
        try:
            await run(terminal.refresh)
            assert await _tokens_issued(settings, terminal_id) == 1

            # The operator disables and enables the terminal: its held token is refused (401), so it signs in
            # again and the upload goes through.
            for action in ("disable", "enable"):
                r = await client.post(f"/v1/admin/terminals/{terminal_id}/{action}", headers=operator.headers)
                assert r.status_code == 200, r.text
            first = await run(terminal.scan, await ankang_payload(client, resident))
            assert await run(terminal.upload_pending) == 1
            assert await run(terminal.server_verdict, first.record_id) == ("accepted", None)
            assert await _tokens_issued(settings, terminal_id) == 2

            # Disabled, it may not sign in again, yet it keeps deciding scans offline and keeps their records.
            r = await client.post(f"/v1/admin/terminals/{terminal_id}/disable", headers=operator.headers)
            assert r.status_code == 200, r.text
            second = await run(terminal.scan, await ankang_payload(client, await _other(client)))
            assert second.result == "accept"
            with pytest.raises(TransportError, match=r"terminal\.disabled"):
                await run(terminal.upload_pending)
            assert await run(terminal.pending_count) == 1
            r = await client.post(f"/v1/admin/terminals/{terminal_id}/enable", headers=operator.headers)
            assert r.status_code == 200, r.text
            assert await run(terminal.upload_pending) == 1
            assert await run(terminal.server_verdict, second.record_id) == ("accepted", None)
            assert await _tokens_issued(settings, terminal_id) == 3

            # A day's work, compressed: the terminal's clock runs through two token lifetimes. Each renewal
            # happens before its token expires (no 401 involved: the server never refused it meanwhile).
            # From here the terminal's clock moves only when the test moves it: the steps below place it 5 s
            # before a token's expiry, which the real seconds a loaded machine spends in between must not eat.
            held[0] = time.time()
            for step in (1, 2):
                ahead[0] += TOKEN_TTL_S
                await run(terminal.refresh)
                assert await _tokens_issued(settings, terminal_id) == 3 + step
            # Within one token's life, no new sign-in.
            await run(terminal.refresh)
            assert await _tokens_issued(settings, terminal_id) == 5

            # Renewing early fails (the token endpoint refuses it): the held token serves until it expires.
            transport.token_endpoint = f"{client.base_url}/elsewhere/token"  # an audience the server refuses
            ahead[0] += TOKEN_TTL_S - 5  # past the renewal point, before the expiry
            await run(terminal.refresh)
            assert await _tokens_issued(settings, terminal_id) == 5
            ahead[0] += 10  # expired by the terminal's clock: no token, offline until it may sign in again
            with pytest.raises(TransportError, match=r"terminal\.invalid_client"):
                await run(terminal.refresh)
        finally:
            await run(terminal.close)
