"""Phone OTP login, refresh rotation with reuse detection, logout, rate limits across workers."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from server.app import create_app
from tests.conftest import last_code, login, random_phone, serve


async def test_otp_login_issues_tokens_and_profile(client):
    session = await login(client)
    r = await client.get("/v1/me", headers=session.headers)
    assert r.status_code == 200
    body = r.json()
    assert body["roles"] == ["resident"]
    assert body["phone"] == session.phone[:3] + "****" + session.phone[-4:]
    assert body["verified"] is False


async def test_otp_request_is_202_for_unknown_and_known_numbers_alike(client):
    known = await login(client)
    r1 = await client.post("/v1/auth/otp", json={"phone": known.phone})
    r2 = await client.post("/v1/auth/otp", json={"phone": random_phone()})
    assert r1.status_code == r2.status_code == 202
    assert r1.json() == r2.json()


async def test_code_is_single_use(client):
    phone = random_phone()
    await client.post("/v1/auth/otp", json={"phone": phone})
    code = last_code(client.app, phone)
    assert (await client.post("/v1/auth/token", json={"phone": phone, "code": code})).status_code == 200
    again = await client.post("/v1/auth/token", json={"phone": phone, "code": code})
    assert again.status_code == 400
    assert again.json()["code"] == "auth.otp_invalid"


async def test_five_wrong_tries_lock_the_code_even_for_the_right_one(client):
    phone = random_phone()
    await client.post("/v1/auth/otp", json={"phone": phone})
    code = last_code(client.app, phone)
    wrong = f"{(int(code) + 1) % 1_000_000:06d}"
    codes = []
    for _ in range(5):
        r = await client.post("/v1/auth/token", json={"phone": phone, "code": wrong})
        codes.append(r.json()["code"])
    assert codes[:4] == ["auth.otp_invalid"] * 4
    assert codes[4] == "auth.otp_locked"
    r = await client.post("/v1/auth/token", json={"phone": phone, "code": code})
    assert r.status_code == 400
    assert r.json()["code"] == "auth.otp_locked"


async def test_code_expires_after_its_lifetime(client):
    phone = random_phone()
    await client.post("/v1/auth/otp", json={"phone": phone})
    code = last_code(client.app, phone)
    identity = client.app.state.identity
    identity.clock = lambda: datetime.now(UTC) + timedelta(seconds=301)
    r = await client.post("/v1/auth/token", json={"phone": phone, "code": code})
    assert r.json()["code"] == "auth.otp_invalid"


async def test_a_new_code_replaces_the_old_one(client):
    phone = random_phone()
    await client.post("/v1/auth/otp", json={"phone": phone})
    first = last_code(client.app, phone)
    await client.post("/v1/auth/otp", json={"phone": phone})
    second = last_code(client.app, phone)
    if first != second:
        r = await client.post("/v1/auth/token", json={"phone": phone, "code": first})
        assert r.json()["code"] == "auth.otp_invalid"
    assert (await client.post("/v1/auth/token", json={"phone": phone, "code": second})).status_code == 200


async def test_codes_are_stored_hashed(client):
    phone = random_phone()
    await client.post("/v1/auth/otp", json={"phone": phone})
    code = last_code(client.app, phone)
    async with client.app.state.core.db.connection() as conn:
        rows = await conn.fetch("SELECT code_hash FROM otp_codes")
    assert rows
    assert all(code.encode() not in bytes(r["code_hash"]) for r in rows)


async def test_refresh_rotates_and_reuse_ends_the_session(client):
    s = await login(client)
    r = await client.post("/v1/auth/refresh", json={"refresh_token": s.refresh_token})
    assert r.status_code == 200
    rotated = r.json()
    assert rotated["refresh_token"] != s.refresh_token
    # The old token comes back (stolen copy): refused, and the whole family ends.
    reuse = await client.post("/v1/auth/refresh", json={"refresh_token": s.refresh_token})
    assert reuse.status_code == 401
    assert reuse.json()["code"] == "auth.refresh_reused"
    after = await client.post("/v1/auth/refresh", json={"refresh_token": rotated["refresh_token"]})
    assert after.status_code == 401
    me = await client.get("/v1/me", headers={"authorization": f"Bearer {rotated['access_token']}"})
    assert me.status_code == 401
    assert me.json()["code"] == "auth.session_ended"


async def test_logout_ends_access_and_refresh(client):
    s = await login(client)
    assert (await client.post("/v1/auth/logout", headers=s.headers)).status_code == 204
    assert (await client.get("/v1/me", headers=s.headers)).json()["code"] == "auth.session_ended"
    r = await client.post("/v1/auth/refresh", json={"refresh_token": s.refresh_token})
    assert r.status_code == 401


async def test_access_token_claims(client):
    import jwt

    s = await login(client)
    header = jwt.get_unverified_header(s.access_token)
    claims = jwt.decode(s.access_token, options={"verify_signature": False})
    assert header["alg"] == "EdDSA"
    assert {"exp", "iat", "sub", "aud", "iss"} <= claims.keys()
    assert claims["exp"] - claims["iat"] <= 3600
    assert str(s.account_id) == claims["sub"]


async def test_forged_and_alg_none_tokens_are_refused(client):
    import jwt

    s = await login(client)
    claims = jwt.decode(s.access_token, options={"verify_signature": False})
    none_token = jwt.encode(claims, key=None, algorithm="none")
    hs_token = jwt.encode(claims, key="secret" * 6, algorithm="HS256")
    for token in (none_token, hs_token, s.access_token[:-4] + "AAAA", "garbage"):
        r = await client.get("/v1/me", headers={"authorization": f"Bearer {token}"})
        assert r.status_code == 401
        assert r.json()["code"] == "auth.token_invalid"


async def test_rate_limit_per_phone_holds_across_two_workers(settings):
    """Two app instances (two workers) share Redis: the per-phone limit counts requests at both."""
    phone = random_phone()
    statuses = []
    async with serve(create_app(settings)) as w1, serve(create_app(settings)) as w2:
        for i in range(settings.otp_per_phone_per_hour + 1):
            worker = w1 if i % 2 == 0 else w2
            statuses.append((await worker.post("/v1/auth/otp", json={"phone": phone})).status_code)
        limited = await w2.post("/v1/auth/otp", json={"phone": phone})
    assert statuses[: settings.otp_per_phone_per_hour] == [202] * settings.otp_per_phone_per_hour
    assert statuses[-1] == 429
    assert limited.json()["code"] == "rate_limit.exceeded"
    assert int(limited.headers["retry-after"]) > 0


async def test_rate_limit_per_client_address(settings):
    from server.settings import load_settings

    tight = load_settings({}, **{**_asdict(settings), "otp_per_address_per_hour": 3})
    async with serve(create_app(tight), client_address="192.0.2.44") as c:
        codes = [(await c.post("/v1/auth/otp", json={"phone": random_phone()})).status_code for _ in range(4)]
    assert codes == [202, 202, 202, 429]


def _asdict(settings):
    import msgspec

    return {k: v for k, v in msgspec.structs.asdict(settings).items()}


async def test_logout_on_one_worker_ends_the_session_on_the_other(settings):
    """Ended sessions travel to every worker over pub/sub; the other worker refuses within moments, without
    asking Redis per request."""
    import asyncio

    async with serve(create_app(settings)) as w1, serve(create_app(settings)) as w2:
        s = await login(w1)
        assert (await w2.get("/v1/me", headers=s.headers)).status_code == 200
        assert (await w1.post("/v1/auth/logout", headers=s.headers)).status_code == 204
        for _ in range(200):  # wait for the announcement to arrive (bounded), not for time
            r = await w2.get("/v1/me", headers=s.headers)
            if r.status_code == 401:
                break
            await asyncio.sleep(0.01)
        assert r.status_code == 401
        assert r.json()["code"] == "auth.session_ended"
