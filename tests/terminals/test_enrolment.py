"""One-time enrolment codes: an operator names the terminal, the terminal registers its own key with the code."""

from __future__ import annotations

import asyncio

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from tests.conftest import login, login_with_role
from tests.credentials.helpers import IDENTITY_POINT, b64, terminal_token


def _public(key: Ed25519PrivateKey) -> str:
    return b64(key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw))


async def test_a_code_enrols_one_terminal_once_which_then_signs_in(client):
    operator = await login_with_role(client, "operator")
    resident = await login(client)
    body = {"name": "Pharmacy 2, counter", "kind": "pharmacy", "scene": "pharmacy-2", "unit": "pharmacy:ph-2"}
    r = await client.post("/v1/admin/terminal-enrolments", json=body, headers=resident.headers)
    assert r.status_code == 403
    r = await client.post("/v1/admin/terminal-enrolments", json=body, headers=operator.headers)
    assert r.status_code == 201, r.text
    assert r.headers["cache-control"] == "no-store"
    code = r.json()["code"]
    assert len(code) == 14 and code.count("-") == 2

    # A bad key leaves the code unspent; a wrong code is refused like a used one.
    r = await client.post("/v1/terminal/enrol", json={"code": code, "public_key": b64(IDENTITY_POINT)})
    assert r.status_code == 422 and r.json()["code"] == "terminal.public_key_invalid"
    key = Ed25519PrivateKey.generate()
    wrong = "2222-2222-2222"
    r = await client.post("/v1/terminal/enrol", json={"code": wrong, "public_key": _public(key)})
    assert r.status_code == 400 and r.json()["code"] == "terminal.enrolment_code_invalid"

    # Two terminals race with one code (typed in lower case without dashes): exactly one is registered.
    other = Ed25519PrivateKey.generate()
    typed = code.replace("-", "").lower()
    answers = await asyncio.gather(
        client.post("/v1/terminal/enrol", json={"code": typed, "public_key": _public(key)}),
        client.post("/v1/terminal/enrol", json={"code": code, "public_key": _public(other)}),
    )
    assert sorted(a.status_code for a in answers) == [201, 400]
    won = next(a for a in answers if a.status_code == 201).json()
    winner = key if answers[0].status_code == 201 else other
    assert won["terminal"]["kind"] == "pharmacy" and won["terminal"]["scene"] == "pharmacy-2"
    assert won["terminal"]["unit"] == "pharmacy:ph-2"  # the unit the operator named travels with the code
    assert won["root_public_keys"] and all(len(v) == 43 for v in won["root_public_keys"].values())
    assert won["pass_issuer"] == 341822  # whose pass keys sign our apps' passes, whatever else the list holds

    listed = (await client.get("/v1/admin/terminals", headers=operator.headers)).json()
    assert [t["id"] for t in listed if t["scene"] == "pharmacy-2"] == [won["terminal"]["id"]]
    fresh = next(t for t in listed if t["id"] == won["terminal"]["id"])
    assert "last_signed_in_at" not in fresh  # never signed in yet
    headers = await terminal_token(client, won["terminal"]["id"], winner)
    listed = (await client.get("/v1/admin/terminals", headers=operator.headers)).json()
    seen = next(t for t in listed if t["id"] == won["terminal"]["id"])
    assert seen["last_signed_in_at"] >= seen["created_at"]  # the operator's "last seen"
    r = await client.post("/v1/scans", json={"payload": "YA:00", "scanned_at": 0}, headers=headers)
    assert r.status_code == 200 and r.json()["reason"] == "credential.malformed"


async def test_an_expired_code_enrols_nothing(client, app):
    operator = await login_with_role(client, "operator")
    body = {"name": "Gate", "kind": "scenic", "scene": "taiji-cave", "valid_minutes": 5}
    code = (await client.post("/v1/admin/terminal-enrolments", json=body, headers=operator.headers)).json()[
        "code"
    ]
    async with app.state.core.db.transaction() as conn:
        await conn.execute("UPDATE terminal_enrolments SET expires_at = now() - interval '1 second'")
    key = Ed25519PrivateKey.generate()
    r = await client.post("/v1/terminal/enrol", json={"code": code, "public_key": _public(key)})
    assert r.status_code == 400 and r.json()["code"] == "terminal.enrolment_code_invalid"
