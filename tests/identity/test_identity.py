"""Real name: GB 11643 checks, encryption at rest with a blind index, masking everywhere, one ID one account."""

from __future__ import annotations

import logging
from datetime import date

import pytest

from server.identity.id_number import IdNumberError, parse_id_number
from tests.conftest import login, valid_id_number


def test_id_number_rules():
    parsed = parse_id_number("341822199001011230")
    assert parsed.birth_date == date(1990, 1, 1)
    assert parsed.sex == "M"  # 17th digit 3 is odd
    assert parse_id_number(valid_id_number(seq="124")).sex == "F"
    assert parse_id_number("11010519491231002x").value.endswith("X")  # lower-case x accepted, normalised
    for bad, why in [
        ("341822199001011231", "check digit"),
        ("341822199002301234", "birth date"),  # 30 February
        ("34182219900101123", "17 digits"),
        ("991822199001011230", "region"),
        (valid_id_number(birth="21000101"), "out of range"),
    ]:
        with pytest.raises(IdNumberError, match=why):
            parse_id_number(bad, today=date(2026, 11, 29))


async def test_set_identity_masks_and_encrypts(client, caplog):
    caplog.set_level(logging.DEBUG)
    s = await login(client)
    id_number = valid_id_number(birth="19851231", seq="456")
    r = await client.put(
        "/v1/me/identity", json={"name": "李四光", "id_number": id_number}, headers=s.headers
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["verified"] is True
    assert body["real_name"] == {
        "name": "李**",
        "id_number": "*" * 14 + id_number[-4:],
        "sex": "M" if int(id_number[16]) % 2 else "F",
    }
    me = (await client.get("/v1/me", headers=s.headers)).json()
    assert me["real_name"]["id_number"] == body["real_name"]["id_number"]
    async with client.app.state.core.db.connection() as conn:
        row = await conn.fetchrow(
            "SELECT name_enc, id_number_enc, id_number_index, phone_enc FROM accounts WHERE id = $1",
            s.account_id,
        )
    for column in row.values():
        raw = bytes(column)
        assert id_number.encode() not in raw and "李四光".encode() not in raw and s.phone.encode() not in raw
    logged = "\n".join(r.getMessage() + str(r.__dict__) for r in caplog.records)
    assert id_number not in logged and s.phone not in logged


async def test_one_id_number_one_account(client):
    id_number = valid_id_number(birth="19770707", seq="778")
    a, b = await login(client), await login(client)
    assert (
        await client.put("/v1/me/identity", json={"name": "张三", "id_number": id_number}, headers=a.headers)
    ).status_code == 200
    # The same person again: idempotent.
    again = await client.put(
        "/v1/me/identity", json={"name": "张三", "id_number": id_number}, headers=a.headers
    )
    assert again.status_code == 200
    taken = await client.put(
        "/v1/me/identity", json={"name": "张三", "id_number": id_number}, headers=b.headers
    )
    assert taken.status_code == 409
    assert taken.json()["code"] == "identity.id_number_taken"
    other = await client.put(
        "/v1/me/identity", json={"name": "张三", "id_number": valid_id_number(seq="999")}, headers=a.headers
    )
    assert other.json()["code"] == "identity.already_verified"


async def test_bad_identity_input_answers_with_codes(client):
    s = await login(client)
    cases = [
        ({"name": "张三", "id_number": "341822199001011231"}, 422, "identity.id_number_invalid"),
        ({"name": "张", "id_number": valid_id_number()}, 422, "identity.name_invalid"),
        ({"name": "张三", "id_number": "12345"}, 400, "request.invalid"),
        ({"name": "张三"}, 400, "request.invalid"),
    ]
    for body, status, code in cases:
        r = await client.put("/v1/me/identity", json=body, headers=s.headers)
        assert (r.status_code, r.json()["code"]) == (status, code), body
    me = (await client.get("/v1/me", headers=s.headers)).json()
    assert me["verified"] is False  # nothing half-written
