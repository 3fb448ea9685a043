"""Device certificates (issue, limits, revocation into the deltas) and settlement of offline rides: exactly once
per record, within the certificate's limits, never below the offline floor, safe under concurrent uploads."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import secrets

import asyncpg
import msgspec
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from yima_sdk.codes import decode_device_certificate
from yima_sdk.holder import Holder

from server.onecard.offline.settlement import OfflineCharge, SettlementResult
from server.wire import b64url, b64url_decode
from tests.conftest import login_with_role
from tests.credentials.helpers import IDENTITY_POINT, b64
from tests.onecard.helpers import Resident, balance, fund, resident_with_card, wallet_check


async def certify(client, resident: Resident, holder: Holder | None = None) -> tuple[Holder, dict]:
    holder = holder or Holder.generate()
    r = await client.post(
        "/v1/me/devices", json={"public_key": b64url(holder.device_public_key)}, headers=resident.headers
    )
    assert r.status_code == 201, r.text
    body = r.json()
    holder.install_certificate(b64url_decode(body["certificate"]))
    return holder, body


def ride(
    holder: Holder,
    amount: int = 200,
    *,
    terminal: str = "bus-0451",
    at: dt.datetime | None = None,
    record: str | None = None,
    terminal_fen: int | None = None,
) -> OfflineCharge:
    cert = holder.certificate
    assert cert is not None
    return OfflineCharge(
        account_ref=cert.account_ref,
        device_certificate_serial=cert.serial,
        amount_fen=amount,
        record_id=record or secrets.token_hex(8),
        terminal_id=terminal,
        scanned_at=at or dt.datetime.now(dt.UTC),
        terminal_fen=terminal_fen,
    )


async def settle(client, charges: list[OfflineCharge]) -> list[SettlementResult]:
    async with client.app.state.core.db.transaction() as conn:
        return await client.app.state.onecard.settle_offline_charges(conn, charges)


async def test_device_certificate_binds_the_account_key_and_limits(client):
    alice = await resident_with_card(client)
    holder, body = await certify(client, alice)
    cert = decode_device_certificate(b64url_decode(body["certificate"]))
    onecard = client.app.state.onecard
    assert cert.device_public_key == holder.device_public_key
    assert cert.serial.hex() == body["serial"]
    assert cert.max_offline_uses == body["max_offline_uses"] == onecard.config.max_offline_uses
    assert cert.max_offline_amount_fen == onecard.config.max_offline_amount_fen
    assert cert.issuer == 341822 and cert.key_id.hex() == body["key_id"]
    # The reference is pseudonymous and maps back only through the server's index.
    async with client.app.state.core.db.connection() as conn:
        owner = await conn.fetchval(
            "SELECT owner_account_id FROM onecard_accounts WHERE account_ref = $1", cert.account_ref
        )
    assert owner == alice.account_id
    issuer_key = await client.app.state.core.keys.find("issuer", body["key_id"])
    Ed25519PublicKey.from_public_bytes(issuer_key.public_raw).verify(cert.signature, cert.signed)
    # A ride code signed on the phone carries this certificate.
    assert holder.ride_code(dt.datetime.now(dt.UTC).timestamp()).startswith("YR:")

    short = await client.post("/v1/me/devices", json={"public_key": "!" * 43}, headers=alice.headers)
    assert short.status_code == 422 and short.json()["code"] == "onecard.device_key_invalid"
    # The identity point decodes to 32 bytes, but (to OpenSSL) anyone could forge ride codes under it.
    weak = await client.post(
        "/v1/me/devices", json={"public_key": b64(IDENTITY_POINT)}, headers=alice.headers
    )
    assert weak.status_code == 422 and weak.json()["code"] == "onecard.device_key_invalid"


async def test_revoked_certificate_is_in_the_revocation_list_and_stops_settling(client):
    alice = await resident_with_card(client)
    await fund(client, alice, 1000)
    holder, body = await certify(client, alice)
    before = ride(holder)
    r = await client.delete(f"/v1/me/devices/{body['id']}", headers=alice.headers)
    assert r.status_code == 200, r.text
    again = await client.delete(f"/v1/me/devices/{body['id']}", headers=alice.headers)
    assert again.status_code == 200 and again.json()["revoked_at"] == r.json()["revoked_at"]
    revocations = client.app.state.credentials.revocations
    assert (
        revocations.revoked_at(revocations.issuer, "device_certificate", bytes.fromhex(body["serial"]))
        is not None
    )
    assert await settle(client, [before]) == [SettlementResult("rejected", "credential.revoked")]
    assert await balance(client, alice) == 1000
    bob = await resident_with_card(client)
    other = await client.delete(f"/v1/me/devices/{body['id']}", headers=bob.headers)
    assert other.status_code == 404 and other.json()["code"] == "onecard.device_not_found"


async def test_same_record_three_times_settles_once(client):
    alice = await resident_with_card(client)
    await fund(client, alice, 1000)
    holder, _ = await certify(client, alice)
    record = ride(holder, 200)
    results = [(await settle(client, [record]))[0] for _ in range(3)]  # the batch form
    assert results == [
        SettlementResult("settled", account_id=alice.account_id),  # whose card paid: the rider, for the app
        SettlementResult("duplicate"),
        SettlementResult("duplicate"),
    ]
    assert await balance(client, alice) == 800
    async with client.app.state.core.db.transaction() as conn:
        kw = await client.app.state.onecard.offline.settle_offline_charge(
            conn,
            account_ref=record.account_ref,
            device_certificate_serial=record.device_certificate_serial,
            amount_fen=record.amount_fen,
            record_id=record.record_id,
            terminal_id=record.terminal_id,
            scanned_at=record.scanned_at,
        )
    assert kw == SettlementResult("duplicate")  # the one-record hook the batch endpoint calls


async def test_same_batch_on_two_workers_concurrently_settles_once(client):
    alice = await resident_with_card(client)
    await fund(client, alice, 5000)
    holder, _ = await certify(client, alice)
    batch = [ride(holder, 100) for _ in range(10)]
    first, second, third = await asyncio.gather(
        settle(client, batch), settle(client, batch), settle(client, batch)
    )
    statuses = [r.status for results in (first, second, third) for r in results]
    assert statuses.count("settled") == 10 and statuses.count("duplicate") == 20
    assert await balance(client, alice) == 4000
    assert await wallet_check(client.app.state.core.db.pool, alice) == (4000, 4000)


async def test_batch_with_forged_expired_revoked_duplicated_and_out_of_order_records(client):
    alice = await resident_with_card(client)
    await fund(client, alice, 5000)
    good, _ = await certify(client, alice)
    lost, lost_body = await certify(client, alice)
    await client.delete(f"/v1/me/devices/{lost_body['id']}", headers=alice.headers)
    now = dt.datetime.now(dt.UTC)
    cert = good.certificate
    assert cert is not None
    after_expiry = dt.datetime.fromtimestamp(cert.expires_at, dt.UTC) + dt.timedelta(hours=1)
    valid = [ride(good, 100, at=now - dt.timedelta(minutes=m)) for m in (1, 5, 3)]  # out of order
    forged = OfflineCharge(secrets.token_bytes(16), secrets.token_bytes(8), 100, "forged-1", "bus-0451", now)
    wrong_account = OfflineCharge(secrets.token_bytes(16), cert.serial, 100, "stolen-1", "bus-0451", now)
    expired = ride(good, 100, at=after_expiry)
    revoked = ride(lost, 100)
    batch = [valid[0], forged, valid[1], expired, valid[0], revoked, wrong_account, valid[2]]
    results = await settle(client, batch)
    assert [r.status for r in results] == [
        "settled",
        "rejected",
        "settled",
        "rejected",
        "duplicate",
        "rejected",
        "rejected",
        "settled",
    ]
    assert [r.reason for r in results if r.status == "rejected"] == [
        "onecard.unknown_certificate",
        "credential.device_certificate_expired",
        "credential.revoked",
        "onecard.account_mismatch",
    ]
    assert await balance(client, alice) == 4700
    again = await settle(client, batch)
    assert [r.status for r in again] == [
        "duplicate",
        "rejected",
        "duplicate",
        "rejected",
        "duplicate",
        "rejected",
        "rejected",
        "duplicate",
    ]
    assert await balance(client, alice) == 4700
    assert await wallet_check(client.app.state.core.db.pool, alice) == (4700, 4700)


async def test_offline_limits_and_floor(client):
    onecard = client.app.state.onecard
    original = onecard.config
    onecard.config = msgspec.structs.replace(
        original, max_offline_uses=3, max_offline_amount_fen=500, offline_floor_fen=-300
    )
    try:
        alice = await resident_with_card(client)
        await fund(client, alice, 100)
        holder, body = await certify(client, alice)
        assert body["max_offline_uses"] == 3
        now = dt.datetime.now(dt.UTC)
        rides = [ride(holder, 150, at=now + dt.timedelta(seconds=i)) for i in range(4)]
        results = await settle(client, rides)
        # 100 - 150 - 150 = -200 >= -300; a third ride would reach -350, below the offline floor.
        assert results[:2] == [SettlementResult("settled", account_id=alice.account_id)] * 2
        assert results[2] == SettlementResult("rejected", "onecard.offline_floor_reached")
        await fund(client, alice, 1000)  # now 800
        more = [ride(holder, 150, at=now + dt.timedelta(seconds=10 + i)) for i in range(2)]
        results = await settle(client, more)
        assert results == [
            SettlementResult("settled", account_id=alice.account_id),
            SettlementResult("rejected", "credential.offline_limit_exceeded"),
        ]
        # Uses: 3 settled of 3 allowed; also any amount now exceeds the limit (450 of 500 used).
        assert await balance(client, alice) == 650
        # The stored rejection answers a re-upload the same way.
        assert (await settle(client, [more[1]]))[0] == SettlementResult(
            "rejected", "credential.offline_limit_exceeded"
        )
        # An account in offline debt gets no new certificate until topped up.
        bob = await resident_with_card(client)
        await fund(client, bob, 100)
        bob_holder, _ = await certify(client, bob)
        assert (await settle(client, [ride(bob_holder, 250)]))[0].status == "settled"
        r = await client.post(
            "/v1/me/devices",
            json={"public_key": b64url(Holder.generate().device_public_key)},
            headers=bob.headers,
        )
        assert r.status_code == 409 and r.json()["code"] == "onecard.in_debt"
    finally:
        onecard.config = original


async def test_active_certificate_cap(client):
    alice = await resident_with_card(client)
    cap = client.app.state.onecard.config.max_active_certificates
    for _ in range(cap):
        await certify(client, alice)
    r = await client.post(
        "/v1/me/devices",
        json={"public_key": b64url(Holder.generate().device_public_key)},
        headers=alice.headers,
    )
    assert r.status_code == 409 and r.json()["code"] == "onecard.too_many_devices"


@pytest.mark.parametrize("amount", [0, -5])
async def test_nonpositive_amounts_are_rejected(client, amount):
    alice = await resident_with_card(client)
    holder, _ = await certify(client, alice)
    assert (await settle(client, [ride(holder, amount)]))[0] == SettlementResult(
        "rejected", "onecard.amount_invalid"
    )


async def test_one_upload_posts_one_journal_and_statements_list_each_ride(client, database_url):
    """Two residents' rides in one upload: one journal, one posting per wallet plus the fares; each resident's
    statement shows every ride of theirs as its own line; reconciliation notices a ride changed behind the
    ledger's back. A ride settlement re-priced says what the terminal had asked."""
    alice, bob = await resident_with_card(client), await resident_with_card(client)
    await fund(client, alice, 5000)
    await fund(client, bob, 5000)
    a, _ = await certify(client, alice)
    b, _ = await certify(client, bob)
    now = dt.datetime.now(dt.UTC)
    batch = [
        ride(a, 200, at=now - dt.timedelta(minutes=3), terminal_fen=200),
        ride(b, 300),
        ride(a, 150, at=now, terminal_fen=100),
    ]
    assert [r.status for r in await settle(client, batch)] == ["settled"] * 3
    async with client.app.state.core.db.connection() as conn:
        journals = await conn.fetch(
            """SELECT DISTINCT journal_id FROM onecard_offline_rides
               WHERE (terminal_id, record_id) IN (SELECT 'bus-0451', unnest($1::text[]))""",
            [c.record_id for c in batch],
        )
        assert len(journals) == 1
        journal = journals[0]["journal_id"]
        postings = await conn.fetch(
            "SELECT amount_fen FROM ledger_postings WHERE journal_id = $1 ORDER BY amount_fen", journal
        )
    assert [p["amount_fen"] for p in postings] == [-350, -300, 650]
    month = dt.datetime.now(dt.timezone(dt.timedelta(hours=8))).strftime("%Y-%m")
    r = await client.get("/v1/me/onecard/statements", params={"month": month}, headers=alice.headers)
    entries = r.json()["entries"]
    assert [(e["kind"], e["amount_fen"], e["balance_fen"]) for e in entries] == [
        ("topup", 5000, 5000),
        ("offline_ride", -200, 4800),
        ("offline_ride", -150, 4650),
    ]
    assert all("bus-0451" in e["description"] for e in entries[1:])
    assert ["the terminal asked" in e["description"] for e in entries[1:]] == [False, True]
    assert "re-priced; the terminal asked 100 fen" in entries[2]["description"]
    assert r.json()["closing_balance_fen"] == await balance(client, alice) == 4650

    admin = await asyncpg.connect(database_url)  # tampering needs more than the app's role
    try:
        await admin.execute(
            "UPDATE onecard_offline_rides SET amount_fen = 1 WHERE terminal_id = 'bus-0451' AND record_id = $1",
            batch[1].record_id,
        )
    finally:
        await admin.close()
    operator = await login_with_role(client, "operator")
    day = dt.datetime.now(dt.timezone(dt.timedelta(hours=8))).date().isoformat()
    report = await client.get(
        "/v1/admin/onecard/reconciliation", params={"date": day}, headers=operator.headers
    )
    unposted = [m for m in report.json()["mismatches"] if m["kind"] == "rides_unposted"]
    assert [(m["ledger_amount_fen"], f"journal {journal}," in m["detail"]) for m in unposted] == [
        (-300, True)
    ]
    assert "settled rides -1" in unposted[0]["detail"]


async def test_the_app_of_the_rides_scene_gives_part_of_it_back_once(client):
    """A settled ride names its scan and the app bound to its scene: that app (only) refunds part of it (the
    rider's concession), once per key even when asked at once, never more than the ride charged; the rider's
    statement shows the ride and the refund, and the ledger still balances."""
    from server.idempotency import IdempotencyKeyReused
    from server.onecard.errors import ChargeNotFound, RefundExceedsCharge

    alice = await resident_with_card(client)
    await fund(client, alice, 1000)
    holder, _ = await certify(client, alice)
    scan_id = "0190b0f4-8e1c-7000-8000-" + secrets.token_hex(6)
    charge = dataclasses.replace(ride(holder, 400), scan_id=scan_id, app_id="gov.guangde.bus")
    assert [r.status for r in await settle(client, [charge])] == ["settled"]
    onecard = client.app.state.onecard

    async def refund(amount: int, key: str, app_id: str = "gov.guangde.bus"):
        async with client.app.state.core.db.transaction() as conn:
            return await onecard.refund_ride(
                conn,
                scan_id=scan_id,
                app_id=app_id,
                amount_fen=amount,
                idempotency_key=key,
                reason="长者免费",
            )

    with pytest.raises(ChargeNotFound):
        await refund(100, "k", app_id="gov.guangde.tourism")
    done = await asyncio.gather(*(refund(300, "ride:1") for _ in range(4)))
    assert {(d.amount_fen, d.refunded_fen) for d in done} == {(300, 300)}
    assert await balance(client, alice) == 900
    with pytest.raises(IdempotencyKeyReused):
        await refund(50, "ride:1")
    with pytest.raises(RefundExceedsCharge):
        await refund(101, "ride:2")
    assert (await refund(100, "ride:2")).refunded_fen == 400
    assert await balance(client, alice) == 1000
    assert await wallet_check(client.app.state.core.db.pool, alice) == (1000, 1000)
    month = dt.datetime.now(dt.timezone(dt.timedelta(hours=8))).strftime("%Y-%m")
    r = await client.get("/v1/me/onecard/statements", params={"month": month}, headers=alice.headers)
    assert [(e["kind"], e["amount_fen"]) for e in r.json()["entries"]] == [
        ("topup", 1000),
        ("offline_ride", -400),
        ("refund", 300),
        ("refund", 100),
    ]
