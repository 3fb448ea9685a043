"""Terminal registration and the RFC 7523 token: what a good assertion gets, what every bad one gets."""

from __future__ import annotations

import base64
import json
import time
import uuid

from tests.conftest import login, login_with_role
from tests.credentials.helpers import (
    IDENTITY_POINT,
    TOKEN_URL,
    b64,
    client_assertion,
    register_terminal,
    terminal_token,
    token_form,
)


async def test_registered_terminal_gets_a_token_and_can_scan(client):
    operator = await login_with_role(client, "operator")
    terminal_id, key = await register_terminal(client, operator, kind="bus", scene="line-3")
    headers = await terminal_token(client, terminal_id, key)
    r = await client.post("/v1/scans", json={"payload": "YA:00", "scanned_at": 0}, headers=headers)
    assert r.status_code == 200 and r.json()["reason"] == "credential.malformed"


async def test_residents_cannot_register_terminals_and_bad_keys_are_refused(client):
    resident = await login(client)
    r = await client.post(
        "/v1/admin/terminals",
        json={"name": "x", "kind": "bus", "scene": "s", "public_key": "A" * 43},
        headers=resident.headers,
    )
    assert r.status_code == 403
    operator = await login_with_role(client, "operator")
    r = await client.post(
        "/v1/admin/terminals",
        json={"name": "x", "kind": "boat", "scene": "s", "public_key": "A" * 43},
        headers=operator.headers,
    )
    assert r.status_code == 400
    r = await client.post(
        "/v1/admin/terminals",
        json={"name": "x", "kind": "bus", "scene": "s", "public_key": "!" * 43},
        headers=operator.headers,
    )
    assert r.status_code == 422 and r.json()["code"] == "terminal.public_key_invalid"
    # The identity point: 32 bytes that decode, but a key under which anyone can forge (to OpenSSL)
    r = await client.post(
        "/v1/admin/terminals",
        json={"name": "x", "kind": "bus", "scene": "s", "public_key": b64(IDENTITY_POINT)},
        headers=operator.headers,
    )
    assert r.status_code == 422 and r.json()["code"] == "terminal.public_key_invalid"


async def test_bad_assertions_are_refused_with_stable_codes(client):
    operator = await login_with_role(client, "operator")
    terminal_id, key = await register_terminal(client, operator)
    other_id, other_key = await register_terminal(client, operator)

    async def code_of(form):
        r = await client.post("/v1/terminal/token", data=form)
        assert r.status_code in (400, 401), r.text
        return r.json()["code"]

    good = client_assertion(terminal_id, key)
    assert await code_of({**token_form(good), "grant_type": "password"}) == "terminal.unsupported_grant_type"
    assert await code_of({**token_form(good), "client_assertion_type": "x"}) == "terminal.invalid_client"
    assert await code_of(token_form(client_assertion(terminal_id, other_key))) == "terminal.invalid_client"
    assert await code_of(token_form(client_assertion(terminal_id, key, aud="http://evil/token"))) == (
        "terminal.invalid_client"
    )
    # Refused for its time alone (a terminal's clock off): a code of its own, so the SDK knows to sync and retry.
    assert (
        await code_of(token_form(client_assertion(terminal_id, key, exp_in=-60))) == "terminal.assertion_time"
    )
    assert (
        await code_of(token_form(client_assertion(terminal_id, key, exp_in=3600)))
        == "terminal.assertion_time"
    )
    assert (
        await code_of(token_form(client_assertion(terminal_id, key, sub=other_id)))
        == "terminal.invalid_client"
    )
    assert await code_of(token_form("not.a.jwt")) == "terminal.invalid_client"
    # jti is single-use: the same assertion twice is refused the second time.
    once = client_assertion(terminal_id, key)
    assert (await client.post("/v1/terminal/token", data=token_form(once))).status_code == 200
    assert await code_of(token_form(once)) == "terminal.assertion_replayed"


async def test_disabling_a_terminal_stops_its_tokens_at_once(client):
    operator = await login_with_role(client, "operator")
    terminal_id, key = await register_terminal(client, operator)
    headers = await terminal_token(client, terminal_id, key)
    body = {"payload": "YA:00", "scanned_at": 0}
    assert (await client.post("/v1/scans", json=body, headers=headers)).status_code == 200
    r = await client.post(f"/v1/admin/terminals/{terminal_id}/disable", headers=operator.headers)
    assert r.status_code == 200 and r.json()["enabled"] is False
    r = await client.post("/v1/scans", json=body, headers=headers)
    assert r.status_code == 401 and r.json()["code"] == "auth.session_ended"
    r = await client.post("/v1/terminal/token", data=token_form(client_assertion(terminal_id, key)))
    assert r.status_code == 401 and r.json()["code"] == "terminal.disabled"
    # Enabled again, it needs a new token; the old one stays dead.
    assert (
        await client.post(f"/v1/admin/terminals/{terminal_id}/enable", headers=operator.headers)
    ).status_code == 200
    assert (await client.post("/v1/scans", json=body, headers=headers)).status_code == 401
    fresh = await terminal_token(client, terminal_id, key)
    assert (await client.post("/v1/scans", json=body, headers=fresh)).status_code == 200


async def test_terminal_tokens_cannot_call_resident_routes(client):
    operator = await login_with_role(client, "operator")
    terminal_id, key = await register_terminal(client, operator)
    headers = await terminal_token(client, terminal_id, key)
    assert (await client.get("/v1/me/codes/ankang", headers=headers)).status_code == 403
    assert (await client.get("/v1/admin/terminals", headers=headers)).status_code == 403


async def test_a_stored_small_order_key_gets_no_token_from_a_forged_assertion(client):
    # Registration refuses such keys now; a row stored before that could hold one. Under the identity point
    # as public key, OpenSSL accepts R = identity, S = 0 as a signature of anything: a universal forgery.
    operator = await login_with_role(client, "operator")
    terminal_id, _ = await register_terminal(client, operator)
    async with client.app.state.core.db.connection() as conn:
        await conn.execute("UPDATE terminals SET public_key = $1 WHERE id = $2", IDENTITY_POINT, terminal_id)
    client.app.state.terminals.registry._cache.clear()
    now = int(time.time())
    claims = {
        "iss": terminal_id,
        "sub": terminal_id,
        "aud": TOKEN_URL,
        "exp": now + 60,
        "jti": uuid.uuid4().hex,
    }
    signing_input = b".".join(
        base64.urlsafe_b64encode(json.dumps(part).encode()).rstrip(b"=")
        for part in ({"alg": "EdDSA", "typ": "JWT"}, claims)
    )
    # R = identity, S = 0
    forged_signature = base64.urlsafe_b64encode(IDENTITY_POINT + bytes(32)).rstrip(b"=")
    r = await client.post(
        "/v1/terminal/token", data=token_form((signing_input + b"." + forged_signature).decode())
    )
    assert r.status_code == 401, r.text
    assert r.json()["code"] == "terminal.invalid_client"
