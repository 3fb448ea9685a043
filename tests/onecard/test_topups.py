"""Top-ups against the payment simulator over real HTTP: valid, forged, duplicate, late and out-of-order
notifications, provider failures and retries, and the daily reconciliation report."""

from __future__ import annotations

import secrets

import msgspec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from server.onecard.payments import signing
from tests.conftest import login_with_role
from tests.onecard.helpers import balance, resident_with_card, wallet_check


async def order(client, resident, amount: int) -> str:
    r = await client.post(
        "/v1/me/onecard/topups",
        json={"amount_fen": amount},
        headers={**resident.headers, "Idempotency-Key": "k-" + secrets.token_hex(8)},
    )
    assert r.status_code == 201, r.text
    assert r.json()["pay_url"].startswith("http://127.0.0.1:")
    return str(r.json()["order_no"])


async def pay(provider, order_no: str, **options) -> list[str]:
    r = await provider.control.post(f"/sim/orders/{order_no}/pay", json=options)
    assert r.status_code == 200, r.text
    return list(r.json()["notify_ids"])


async def deliver(provider, notify_ids: list[str] | None = None) -> list[dict]:
    r = await provider.control.post("/sim/deliver", json={"notify_ids": notify_ids})
    assert r.status_code == 200, r.text
    return list(r.json())


async def outcomes(client, order_no: str) -> list[str]:
    async with client.app.state.core.db.connection() as conn:
        rows = await conn.fetch(
            "SELECT outcome FROM onecard_payment_notifications WHERE order_no = $1 ORDER BY id", order_no
        )
    return [r["outcome"] for r in rows]


async def test_paid_notification_credits_exactly_once_despite_duplicates(client, provider):
    alice = await resident_with_card(client)
    order_no = await order(client, alice, 1500)
    [paid] = await pay(provider, order_no)
    assert [a["delivered"] for a in await deliver(provider)] == [True]
    assert await balance(client, alice) == 1500
    await deliver(provider, [paid, paid])  # the provider sends it again (twice)
    assert await balance(client, alice) == 1500
    assert await outcomes(client, order_no) == ["credited", "duplicate", "duplicate"]
    status = await client.get(f"/v1/me/onecard/topups/{order_no}", headers=alice.headers)
    assert status.json()["state"] == "paid" and status.json()["credited"] is True
    assert await wallet_check(client.app.state.core.db.pool, alice) == (1500, 1500)


async def test_forged_and_altered_notifications_are_refused(client, provider):
    alice = await resident_with_card(client)
    order_no = await order(client, alice, 900)
    body = msgspec.json.encode(
        {
            "notify_id": "nforged",
            "order_no": order_no,
            "state": "paid",
            "amount_fen": 900,
            "provider_txn_id": "4200forged",
            "event_at": provider.clock().isoformat(),
        }
    )
    timestamp = str(int(provider.clock().timestamp()))
    forged = signing.sign_notification(Ed25519PrivateKey.generate(), timestamp, "n1", body)
    headers = {
        signing.NOTIFY_TIMESTAMP: timestamp,
        signing.NOTIFY_NONCE: "n1",
        signing.NOTIFY_SIGNATURE: forged,
    }
    r = await client.post("/v1/payments/notify", content=body, headers=headers)
    assert r.status_code == 401 and r.json()["code"] == "payment.signature_invalid"
    genuine = signing.sign_notification(provider.simulator.signing_key, timestamp, "n1", body)
    altered = body.replace(b'"amount_fen":900', b'"amount_fen":90000')
    r = await client.post(
        "/v1/payments/notify", content=altered, headers={**headers, signing.NOTIFY_SIGNATURE: genuine}
    )
    assert r.status_code == 401
    r = await client.post("/v1/payments/notify", content=body)
    assert r.status_code == 401
    # A genuine signature made long ago is a replay.
    old = str(int(provider.clock().timestamp()) - 3600)
    replay = signing.sign_notification(provider.simulator.signing_key, old, "n1", body)
    r = await client.post(
        "/v1/payments/notify",
        content=body,
        headers={signing.NOTIFY_TIMESTAMP: old, signing.NOTIFY_NONCE: "n1", signing.NOTIFY_SIGNATURE: replay},
    )
    assert r.status_code == 401
    assert await balance(client, alice) == 0


async def test_out_of_order_notifications(client, provider):
    alice = await resident_with_card(client)
    order_no = await order(client, alice, 700)
    paying, paid = await pay(provider, order_no, paying_first=True)
    await deliver(provider, [paid, paying])  # "paid" overtakes "paying"
    assert await outcomes(client, order_no) == ["credited", "stale"]
    status = (await client.get(f"/v1/me/onecard/topups/{order_no}", headers=alice.headers)).json()
    assert status["state"] == "paid"
    assert await balance(client, alice) == 700


async def test_late_notification_after_local_expiry_still_credits_once(client, provider):
    alice = await resident_with_card(client)
    order_no = await order(client, alice, 400)
    provider.clock.advance(client.app.state.onecard.config.topup_expiry_s + 60)
    async with client.app.state.core.db.transaction() as conn:
        assert await client.app.state.onecard_topups.expire(conn) >= 1
    assert (await client.get(f"/v1/me/onecard/topups/{order_no}", headers=alice.headers)).json()[
        "state"
    ] == "expired"
    await pay(provider, order_no)
    await deliver(provider)
    assert await outcomes(client, order_no) == ["credited_late"]
    assert await balance(client, alice) == 400


async def test_closed_order_is_not_credited(client, provider):
    alice = await resident_with_card(client)
    order_no = await order(client, alice, 400)
    r = await provider.control.post(f"/sim/orders/{order_no}/close")
    assert r.status_code == 200
    await deliver(provider)
    assert await outcomes(client, order_no) == ["closed"]
    assert await balance(client, alice) == 0


async def test_provider_failures_are_retried(client, provider):
    alice = await resident_with_card(client)
    # Order creation: two 503s, then success; the adapter retries (same order number, so no duplicate order).
    await provider.control.post("/sim/faults", json={"fail_creates": 2})
    order_no = await order(client, alice, 1200)
    assert len(provider.simulator.orders) == 1
    await provider.control.post("/sim/faults", json={"fail_creates": 10})
    r = await client.post(
        "/v1/me/onecard/topups",
        json={"amount_fen": 100},
        headers={**alice.headers, "Idempotency-Key": "k-fail-1"},
    )
    assert r.status_code == 503 and r.json()["code"] == "payment.provider_unavailable"
    await provider.control.post("/sim/faults", json={"fail_creates": 0})
    # Notification delivery: the network drops the first attempt; the simulator retries after its backoff.
    provider.network.failures = 1
    await pay(provider, order_no)
    assert [a["delivered"] for a in await deliver(provider)] == [False]
    assert await deliver(provider) == []  # not due yet
    assert await balance(client, alice) == 0
    provider.clock.advance(15)
    assert [a["delivered"] for a in await deliver(provider)] == [True]
    assert await balance(client, alice) == 1200


async def test_notification_for_an_uncommitted_order_is_retried(client, provider):
    """The payer can be faster than our commit: 404 makes the provider come back later."""
    alice = await resident_with_card(client)
    order_no = await order(client, alice, 300)
    async with client.app.state.core.db.connection() as conn:
        # Rename our order so the provider's notification names an order we do not (yet) know.
        await conn.execute(
            "UPDATE onecard_topups SET order_no = order_no || 'x' WHERE order_no = $1", order_no
        )
    await pay(provider, order_no)
    attempts = await deliver(provider)
    assert attempts == [{"notify_id": attempts[0]["notify_id"], "status": 404, "delivered": False}]
    async with client.app.state.core.db.connection() as conn:
        await conn.execute("UPDATE onecard_topups SET order_no = $1 WHERE order_no = $1 || 'x'", order_no)
    provider.clock.advance(15)
    assert [a["delivered"] for a in await deliver(provider)] == [True]
    assert await balance(client, alice) == 300


async def test_reconciliation_lists_every_mismatch(client, provider):
    alice = await resident_with_card(client)
    matched = await order(client, alice, 1000)
    await pay(provider, matched)
    lost = await order(client, alice, 2000)
    await pay(provider, lost, notify=False)  # paid at the provider, notification never sent
    skewed = await order(client, alice, 3000)
    await pay(provider, skewed)
    await deliver(provider)
    await provider.control.post("/sim/faults", json={"bill_amount_delta": {skewed: 1}})
    operator = await login_with_role(client, "operator")
    r = await client.get(
        "/v1/admin/onecard/reconciliation",
        params={"date": provider.day.isoformat()},
        headers=operator.headers,
    )
    assert r.status_code == 200, r.text
    report = r.json()
    found = {(m["kind"], m.get("order_no")) for m in report["mismatches"]}
    assert found == {("missing_credit", lost), ("amount_mismatch", skewed)}
    assert report["provider_count"] == 3 and report["provider_total_fen"] == 6001
    assert report["ledger_count"] == 2 and report["ledger_total_fen"] == 4000 and report["matched"] == 1
    resident = await client.get(
        "/v1/admin/onecard/reconciliation", params={"date": provider.day.isoformat()}, headers=alice.headers
    )
    assert resident.status_code == 403
