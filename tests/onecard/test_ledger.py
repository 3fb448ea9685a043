"""One-card accounts and the ledger: linking the card, idempotent charges and refunds, the floor under 200
concurrent charges, statements."""

from __future__ import annotations

import asyncio
import datetime as dt

import pytest

from server.idempotency import IdempotencyKeyReused
from server.onecard import errors
from server.onecard.service import CST
from server.onecard.ss_card import CardNumberError, mask_card_number, normalise_card_number
from tests.conftest import login
from tests.onecard.helpers import balance, card_number, fund, resident_with_card, verified, wallet_check


def test_card_number_rule():
    assert normalise_card_number(" a1234 5678 ") == "A12345678"
    assert mask_card_number("A12345678") == "A******78"
    for bad in ["123456789", "A1234567", "A123456789", "AB2345678", "A1234567X", ""]:
        with pytest.raises(CardNumberError):
            normalise_card_number(bad)


async def test_open_account_needs_real_name_and_a_valid_card(client):
    unverified = await login(client)
    r = await client.post(
        "/v1/me/onecard", json={"ss_card_number": card_number()}, headers=unverified.headers
    )
    assert r.status_code == 403 and r.json()["code"] == "identity.required"
    s = await verified(client)
    r = await client.post("/v1/me/onecard", json={"ss_card_number": "12345"}, headers=s.headers)
    assert r.status_code in (400, 422)
    r = await client.post("/v1/me/onecard", json={"ss_card_number": "1234567890"}, headers=s.headers)
    assert r.status_code == 422 and r.json()["code"] == "onecard.card_number_invalid"
    assert (await client.get("/v1/me/onecard", headers=s.headers)).json()["code"] == "onecard.not_open"


async def test_one_card_one_account_and_masked_view(client):
    alice = await resident_with_card(client)
    body = (await client.get("/v1/me/onecard", headers=alice.headers)).json()
    assert body["balance_fen"] == 0 and body["ecard_status"] == "active"
    assert body["card_number"] == mask_card_number(alice.card_number)
    assert alice.card_number not in str(body)
    again = await client.post(
        "/v1/me/onecard", json={"ss_card_number": alice.card_number}, headers=alice.headers
    )
    assert again.status_code == 200  # same card again: the same account
    other = await client.post("/v1/me/onecard", json={"ss_card_number": card_number()}, headers=alice.headers)
    assert other.status_code == 422 and other.json()["code"] == "onecard.card_not_yours"
    bob = await verified(client)
    r = await client.post(
        "/v1/me/onecard", json={"ss_card_number": alice.card_number.lower()}, headers=bob.headers
    )
    assert r.status_code == 422 and r.json()["code"] == "onecard.card_not_yours"
    async with client.app.state.core.db.connection() as conn:
        stored = await conn.fetchval(
            "SELECT ss_card_enc FROM onecard_accounts WHERE owner_account_id = $1", alice.account_id
        )
    assert alice.card_number.encode() not in bytes(stored)


async def test_charge_is_idempotent_per_key(client):
    alice = await resident_with_card(client)
    await fund(client, alice, 1000)
    onecard, db = client.app.state.onecard, client.app.state.core.db
    kwargs = dict(account_id=alice.account_id, amount_fen=300, reason="bus fare", app_id="cn.gd.bus")
    async with db.transaction() as conn:
        first = await onecard.charge(conn, idempotency_key="order-0001", **kwargs)
    async with db.transaction() as conn:
        second = await onecard.charge(conn, idempotency_key="order-0001", **kwargs)
    assert second == first
    assert await balance(client, alice) == 700
    with pytest.raises(IdempotencyKeyReused) as raised:
        async with db.transaction() as conn:
            await onecard.charge(conn, idempotency_key="order-0001", **{**kwargs, "amount_fen": 301})
    assert raised.value.status == 409 and raised.value.code == "idempotency.key_reused"
    assert await balance(client, alice) == 700
    # A refused charge leaves no trace: the same key may be retried once the balance covers it.
    with pytest.raises(errors.InsufficientBalance):
        async with db.transaction() as conn:
            await onecard.charge(conn, idempotency_key="order-0002", **{**kwargs, "amount_fen": 5000})
    await fund(client, alice, 5000)
    async with db.transaction() as conn:
        later = await onecard.charge(conn, idempotency_key="order-0002", **{**kwargs, "amount_fen": 5000})
    assert later.balance_fen == 700
    assert await wallet_check(client.app.state.core.db.pool, alice) == (700, 700)


async def test_topup_order_is_idempotent_per_key(client):
    alice = await resident_with_card(client)
    headers = {**alice.headers, "Idempotency-Key": "topup-key-1"}
    a = await client.post("/v1/me/onecard/topups", json={"amount_fen": 500}, headers=headers)
    b = await client.post("/v1/me/onecard/topups", json={"amount_fen": 500}, headers=headers)
    assert a.status_code == b.status_code == 201
    assert a.json()["order_no"] == b.json()["order_no"] and a.json()["pay_url"]
    c = await client.post("/v1/me/onecard/topups", json={"amount_fen": 600}, headers=headers)
    assert c.status_code == 409 and c.json()["code"] == "idempotency.key_reused"
    missing = await client.post("/v1/me/onecard/topups", json={"amount_fen": 500}, headers=alice.headers)
    assert missing.status_code == 400


async def test_200_concurrent_charges_against_a_balance_covering_50(client):
    alice = await resident_with_card(client)
    await fund(client, alice, 50 * 37)
    onecard, db = client.app.state.onecard, client.app.state.core.db

    async def one(i: int) -> bool:
        try:
            async with db.transaction() as conn:
                await onecard.charge(
                    conn,
                    account_id=alice.account_id,
                    amount_fen=37,
                    reason="ride",
                    idempotency_key=f"c-{i:04d}",
                    app_id="cn.gd.bus",
                )
            return True
        except errors.InsufficientBalance:
            return False

    outcomes = await asyncio.gather(*(one(i) for i in range(200)))
    assert sum(outcomes) == 50
    assert await balance(client, alice) == 0
    assert await wallet_check(db.pool, alice) == (0, 0)
    async with db.connection() as conn:
        charged = await conn.fetchval(
            """SELECT count(*) FROM onecard_charges c JOIN onecard_accounts o ON o.id = c.onecard_account_id
               WHERE o.owner_account_id = $1""",
            alice.account_id,
        )
        unbalanced = await conn.fetchval(
            "SELECT count(*) FROM (SELECT journal_id FROM ledger_postings GROUP BY journal_id "
            "HAVING sum(amount_fen) <> 0) x"
        )
    assert charged == 50 and unbalanced == 0


async def test_refunds_are_idempotent_and_bounded_by_the_charge(client):
    alice = await resident_with_card(client)
    await fund(client, alice, 1000)
    onecard, db = client.app.state.onecard, client.app.state.core.db
    async with db.transaction() as conn:
        charge = await onecard.charge(
            conn,
            account_id=alice.account_id,
            amount_fen=800,
            reason="ticket",
            idempotency_key="tk-1",
            app_id=None,
        )
    async with db.transaction() as conn:
        r1 = await onecard.refund(
            conn, charge_id=charge.charge_id, amount_fen=300, idempotency_key="rf-1", reason="x"
        )
    async with db.transaction() as conn:
        again = await onecard.refund(
            conn, charge_id=charge.charge_id, amount_fen=300, idempotency_key="rf-1", reason="x"
        )
    assert again == r1 and r1.refunded_fen == 300
    with pytest.raises(errors.RefundExceedsCharge):
        async with db.transaction() as conn:
            await onecard.refund(
                conn, charge_id=charge.charge_id, amount_fen=501, idempotency_key="rf-2", reason="x"
            )
    async with db.transaction() as conn:
        rest = await onecard.refund(
            conn, charge_id=charge.charge_id, amount_fen=500, idempotency_key="rf-3", reason="x"
        )
    assert rest.refunded_fen == 800 and rest.balance_fen == 1000
    assert await wallet_check(db.pool, alice) == (1000, 1000)
    async with db.connection() as conn:
        actions = await conn.fetch(
            "SELECT action FROM audit_log WHERE details->>'charge_id' = $1 ORDER BY seq",
            str(charge.charge_id),
        )
    assert [a["action"] for a in actions] == ["onecard.charged", "onecard.refunded", "onecard.refunded"]


async def test_monthly_statement(client):
    alice = await resident_with_card(client)
    await fund(client, alice, 1000)
    onecard, db = client.app.state.onecard, client.app.state.core.db
    async with db.transaction() as conn:
        await onecard.charge(
            conn,
            account_id=alice.account_id,
            amount_fen=250,
            reason="medicine",
            idempotency_key="m-1",
            app_id="cn.gd.med",
        )
    month = dt.datetime.now(CST).strftime("%Y-%m")
    r = await client.get("/v1/me/onecard/statements", params={"month": month}, headers=alice.headers)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["opening_balance_fen"] == 0 and body["closing_balance_fen"] == 750
    assert body["credits_fen"] == 1000 and body["debits_fen"] == 250
    assert [(e["kind"], e["amount_fen"], e["balance_fen"]) for e in body["entries"]] == [
        ("topup", 1000, 1000),
        ("charge", -250, 750),
    ]
    assert "medicine" in body["entries"][1]["description"]
    empty = await client.get("/v1/me/onecard/statements", params={"month": "2020-01"}, headers=alice.headers)
    assert empty.json()["entries"] == [] and empty.json()["closing_balance_fen"] == 0
    bad = await client.get("/v1/me/onecard/statements", params={"month": "2020-13"}, headers=alice.headers)
    assert bad.status_code == 400
