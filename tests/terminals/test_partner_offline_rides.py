"""一卡通行 offline: a partner county's ride code (its device certificate signed by that county's issuer key on our
trust list, real Ed25519) is accepted from a Guangde bus's upload and settled as a ride that county owes, once; a
certificate signed by a key off the list, or by one not allowed `device_certificate`, is refused."""

from __future__ import annotations

import base64
import time
import uuid
from datetime import UTC, datetime, timedelta

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from yima_sdk.codes import issue_device_certificate
from yima_sdk.holder import Holder

from tests.conftest import login_with_role
from tests.credentials.helpers import register_terminal, terminal_token

LANGXI = 341821


def _record(payload, *, amount, record_id=None):
    return {
        "record_id": record_id or str(uuid.uuid4()),
        "payload": payload,
        "scanned_at": int(time.time() * 1000),
        "clock_source": "ntp",
        "amount_fen": amount,
        "local_result": "accept",
        "local_reason": None,
    }


async def _upload(client, headers, records):
    r = await client.post(
        "/v1/scans/batch", json={"batch_id": str(uuid.uuid4()), "records": records}, headers=headers
    )
    assert r.status_code == 200, r.text
    return [(x["status"], x["reason"]) for x in r.json()["results"]]


async def _partner_key(client, operator, kid: str, types: list[str]) -> Ed25519PrivateKey:
    key = Ed25519PrivateKey.generate()
    now = datetime.now(UTC)
    r = await client.post(
        "/v1/admin/trust-list/partner-keys",
        headers=operator.headers,
        json={
            "issuer": LANGXI,
            "key_id": kid,
            "public_key": base64.urlsafe_b64encode(
                key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
            ).decode(),
            "credential_types": types,
            "not_before": (now - timedelta(days=1)).isoformat(),
            "not_after": (now + timedelta(days=1)).isoformat(),
        },
    )
    assert r.status_code == 201, r.text
    return key


def _partner_holder(
    key: Ed25519PrivateKey, kid: str, *, max_amount: int = 5000, max_uses: int = 20
) -> Holder:
    holder = Holder.generate()
    holder.install_certificate(
        issue_device_certificate(
            key,
            bytes.fromhex(kid),
            LANGXI,
            b"\x07" * 16,  # the partner county's own account reference: nothing we can open
            holder.device_public_key,
            int(time.time()) - 60,
            24,
            max_uses,
            max_amount,
        )
    )
    return holder


async def test_a_partner_ride_code_is_settled_once_as_owed_by_its_county(client):
    operator = await login_with_role(client, "operator")
    key = await _partner_key(client, operator, "6a6b6c6d", ["ankang_code", "device_certificate"])
    bus_a, key_a = await register_terminal(client, operator, kind="bus")
    bus_b, key_b = await register_terminal(client, operator, kind="bus")
    headers_a = await terminal_token(client, bus_a, key_a)
    holder = _partner_holder(key, "6a6b6c6d", max_amount=300)
    now = time.time()
    ride1, ride2 = holder.ride_code(now), holder.ride_code(now)
    first = _record(ride1, amount=200)
    assert await _upload(client, headers_a, [first, _record(ride2, amount=200)]) == [
        ("accepted", None),
        # The certificate allows 3 yuan offline: the county owes no more than its certificate let through.
        ("rejected", "credential.offline_limit_exceeded"),
    ]
    # The same record again (a retry) and the same code on another bus: recorded once.
    assert await _upload(client, headers_a, [first]) == [("accepted", None)]
    headers_b = await terminal_token(client, bus_b, key_b)
    assert await _upload(client, headers_b, [_record(ride1, amount=200)]) == [("rejected", "scan.replayed")]
    async with client.app.state.core.db.connection() as conn:
        rides = await conn.fetch(
            """SELECT status, reason, amount_fen, onecard_account_id, partner_issuer, journal_id
               FROM onecard_offline_rides WHERE certificate_serial = $1 ORDER BY status""",
            holder.certificate.serial,
        )
    assert [dict(r) for r in rides] == [
        {"status": "rejected", "reason": "credential.offline_limit_exceeded", "amount_fen": 200,
         "onecard_account_id": None, "partner_issuer": LANGXI, "journal_id": None},
        # Owed by Langxi: charged to no one-card here, in no journal of ours.
        {"status": "settled", "reason": None, "amount_fen": 200,
         "onecard_account_id": None, "partner_issuer": LANGXI, "journal_id": None},
    ]  # fmt: skip


async def test_a_partner_certificate_off_the_list_or_not_allowed_certificates_is_refused(client):
    operator = await login_with_role(client, "operator")
    ankang_only = await _partner_key(client, operator, "7a7b7c7d", ["ankang_code"])
    stranger = Ed25519PrivateKey.generate()  # never put on the trust list
    bus, bus_key = await register_terminal(client, operator, kind="bus")
    now = time.time()
    holders = [_partner_holder(ankang_only, "7a7b7c7d"), _partner_holder(stranger, "8a8b8c8d")]
    codes = [h.ride_code(now) for h in holders]
    answers = await _upload(
        client, await terminal_token(client, bus, bus_key), [_record(c, amount=200) for c in codes]
    )
    assert answers == [("rejected", "credential.unknown_key"), ("rejected", "credential.unknown_key")]
    async with client.app.state.core.db.connection() as conn:
        assert not await conn.fetchval(
            "SELECT count(*) FROM onecard_offline_rides WHERE certificate_serial = ANY($1::bytea[])",
            [h.certificate.serial for h in holders],
        )


async def test_two_counties_certificates_with_one_serial_each_keep_their_own_limits(client):
    """Each partner county's certificate allows 2 rides. Langxi's certificate has the serial of one of another
    county's (341824) that already used its 2 rides (a serial is 8 bytes of a hash, so two counties may share
    one; a real collision cannot be forged here, so that county's settled rides are stored as settlement stores
    them): Langxi's 2 rides are still accepted, its third is refused by its own limit."""
    operator = await login_with_role(client, "operator")
    key = await _partner_key(client, operator, "5a5b5c5d", ["ankang_code", "device_certificate"])
    bus, bus_key = await register_terminal(client, operator, kind="bus")
    headers = await terminal_token(client, bus, bus_key)
    holder = _partner_holder(key, "5a5b5c5d", max_uses=2)
    serial = holder.certificate.serial
    async with client.app.state.core.db.connection() as conn:
        await conn.executemany(
            """INSERT INTO onecard_offline_rides (terminal_id, record_id, certificate_serial, amount_fen, scanned_at,
                                                  status, settled_at, partner_issuer)
               VALUES ('other-county-bus', $1, $2, 200, now(), 'settled', now(), 341824)""",
            [(str(uuid.uuid4()), serial) for _ in range(2)],
        )
    now = time.time()
    rides = [_record(holder.ride_code(now), amount=200) for _ in range(3)]
    assert await _upload(client, headers, rides[:2]) == [("accepted", None), ("accepted", None)]
    assert await _upload(client, headers, rides[2:]) == [("rejected", "credential.offline_limit_exceeded")]
    async with client.app.state.core.db.connection() as conn:
        settled = await conn.fetch(
            """SELECT partner_issuer, count(*) AS n FROM onecard_offline_rides
               WHERE certificate_serial = $1 AND status = 'settled' GROUP BY partner_issuer ORDER BY 1""",
            serial,
        )
    assert [tuple(r) for r in settled] == [(LANGXI, 2), (341824, 2)]
