"""Offline batch upload: re-verified on the server, deduplicated by record id, idempotent on retries and on two
workers at once, ride charges settled through the one-card hook in the same transaction."""

from __future__ import annotations

import asyncio
import base64
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from yima_sdk.codes import Verifier, issue_ankang_code, issue_device_certificate
from yima_sdk.holder import Holder

from server.app import create_app
from tests.conftest import cut_while_it_waits, login_with_role, serve
from tests.credentials.helpers import ankang_payload, register_terminal, terminal_token, verified_resident


def _record(payload, *, amount=0, at=None, local="accept", record_id=None):
    return {
        "record_id": record_id or str(uuid.uuid4()),
        "payload": payload,
        "scanned_at": int((at or time.time()) * 1000),
        "clock_source": "ntp",
        "amount_fen": amount,
        "local_result": local,
        "local_reason": None,
    }


async def _upload(client, headers, records, batch_id=None):
    r = await client.post(
        "/v1/scans/batch",
        json={"batch_id": batch_id or str(uuid.uuid4()), "records": records},
        headers=headers,
    )
    assert r.status_code == 200, r.text
    return [(x["status"], x["reason"]) for x in r.json()["results"]]


async def _ride_holder(client, account_id):
    core, credentials = client.app.state.core, client.app.state.credentials
    key = await core.keys.active("issuer")
    holder = Holder.generate()
    certificate = issue_device_certificate(
        key.private_key,
        bytes.fromhex(key.kid),
        341822,
        credentials.ankang.refs.seal(account_id, 0, 0),
        holder.device_public_key,
        int(time.time()) - 60,
        24,
        20,
        5000,
    )
    holder.install_certificate(certificate)
    return holder


async def test_batch_is_reverified_and_idempotent_across_retries_and_workers(client, settings):
    operator = await login_with_role(client, "operator")
    resident, _ = await verified_resident(client)
    terminal_id, key = await register_terminal(client, operator, kind="clinic")
    headers = await terminal_token(client, terminal_id, key)
    good = await ankang_payload(client, resident)
    forged = good[:-6] + ("AAAAAA" if not good.endswith("AAAAAA") else "BBBBBB")
    records = [
        _record(good),
        _record(forged),  # the terminal said accept; the server never trusts that
        _record(good, at=time.time() + 3600),  # a terminal clock in the future
        _record("garbage"),
        _record(good, amount=-1),
        _record(good, amount=2**40),  # beyond any fare, and beyond the column: refused per record, not a 500
    ]
    batch_id = str(uuid.uuid4())
    first = await _upload(client, headers, records, batch_id)
    assert first == [
        ("accepted", None),
        ("rejected", "credential.bad_signature"),
        ("rejected", "scan.clock_invalid"),
        ("rejected", "credential.malformed"),
        ("rejected", "scan.amount_invalid"),
        ("rejected", "scan.amount_invalid"),
    ]
    # Sent again (the answer was lost): each record answers with its original verdict, stored once.
    assert await _upload(client, headers, records, batch_id) == first
    async with serve(create_app(settings)) as worker_b:
        headers_b = await terminal_token(worker_b, terminal_id, key)
        fresh = [_record(good) for _ in range(3)]
        both = await asyncio.gather(_upload(client, headers, fresh), _upload(worker_b, headers_b, fresh))
    # Each record is applied exactly once, whichever worker got there first, and both answer its verdict.
    assert both[0] == both[1] == [("accepted", None)] * 3
    async with client.app.state.core.db.connection() as conn:
        count = await conn.fetchval(
            "SELECT count(*) FROM scans WHERE terminal_id = $1 AND mode = 'offline'", terminal_id
        )
    assert count == 9


@dataclass
class _Settled:
    status: str
    reason: str | None
    account_id: int | None = None


class _RecordingSettlement:
    """Stands in for the one-card domain's hook; records what it was asked to settle, call by call."""

    def __init__(self) -> None:
        self.calls: list[list[tuple[str, int, bool]]] = []

    async def settle_offline_charges(self, conn, charges):
        in_transaction = conn.is_in_transaction()
        self.calls.append([(c.record_id, c.amount_fen, in_transaction) for c in charges])
        return [
            _Settled("rejected", "onecard.insufficient_balance")
            if c.amount_fen > 1000
            else _Settled("settled", None)
            for c in charges
        ]


async def test_ride_charges_are_settled_once_and_ride_codes_spent_once(client):
    operator = await login_with_role(client, "operator")
    resident, _ = await verified_resident(client)
    bus_a, key_a = await register_terminal(client, operator, kind="bus")
    bus_b, key_b = await register_terminal(client, operator, kind="bus")
    holder = await _ride_holder(client, resident.account_id)
    now = time.time()
    ride1, ride2, ride3 = holder.ride_code(now), holder.ride_code(now), holder.ride_code(now)
    settlement = _RecordingSettlement()
    scans = client.app.state.terminals.scans.offline
    previous, scans.settlement = scans.settlement, settlement
    try:
        a = await _upload(
            client,
            await terminal_token(client, bus_a, key_a),
            [_record(ride1, amount=200), _record(ride2, amount=5000), _record(ride3, amount=0)],
        )
        # The same ride code (same certificate and counter) uploaded by another bus: spent already.
        b = await _upload(client, await terminal_token(client, bus_b, key_b), [_record(ride1, amount=200)])
    finally:
        scans.settlement = previous
    assert a == [("accepted", None), ("rejected", "onecard.insufficient_balance"), ("accepted", None)]
    assert b == [("rejected", "scan.replayed")]
    # The upload's charges went over in one call, inside the upload's transaction; the replayed one never did.
    assert [[(amount, inside) for _, amount, inside in call] for call in settlement.calls] == [
        [(200, True), (5000, True)]
    ]


async def test_an_upload_whose_database_connection_dies_stores_nothing_and_can_be_sent_again(
    client, database_url
):
    """PostgreSQL drops the upload's connection mid-transaction: a 503 with a stable code, no record, no charge;
    the terminal sends the same upload again and it is applied once."""
    operator = await login_with_role(client, "operator")
    resident, _ = await verified_resident(client)
    bus, key = await register_terminal(client, operator, kind="bus")
    headers = await terminal_token(client, bus, key)
    holder = await _ride_holder(client, resident.account_id)
    settlement = _RecordingSettlement()
    scans = client.app.state.terminals.scans.offline
    previous, scans.settlement = scans.settlement, settlement
    records = [_record(holder.ride_code(time.time()), amount=200) for _ in range(3)]
    body = {"batch_id": str(uuid.uuid4()), "records": records}
    # The upload waits on the terminal's upload lock inside its transaction, and its backend is ended there.
    r = await cut_while_it_waits(
        database_url,
        "SELECT pg_advisory_xact_lock(hashtext('scan_records'), hashtext($1))",
        (bus,),
        "scan_records",
        lambda: client.post("/v1/scans/batch", json=body, headers=headers),
    )
    try:
        assert r.status_code == 503, r.text
        assert r.json()["code"] == "service.db_unavailable" and r.headers["retry-after"] == "1"
        async with client.app.state.core.db.connection() as conn:
            assert await conn.fetchval("SELECT count(*) FROM scans WHERE terminal_id = $1", bus) == 0
        assert settlement.calls == []
        again = await client.post("/v1/scans/batch", json=body, headers=headers)
    finally:
        scans.settlement = previous
    assert [x["status"] for x in again.json()["results"]] == ["accepted"] * 3
    assert [[amount for _, amount, _ in call] for call in settlement.calls] == [[200, 200, 200]]


async def test_a_partner_key_this_worker_has_not_heard_of_is_looked_up_within_the_upload(client):
    """Another worker added a partner county's key; this one still holds the older trust list. The upload finds
    the key by reloading the list on its own transaction's connection, then decides the records."""
    operator = await login_with_role(client, "operator")
    credentials = client.app.state.credentials
    # This worker hears of no change by message or by polling: only the recheck is left.
    await credentials.stop()
    trust = credentials.trust
    held = trust.current
    partner, kid = Ed25519PrivateKey.generate(), "5a6b7c8d"
    now = datetime.now(UTC)
    r = await client.post(
        "/v1/admin/trust-list/partner-keys",
        headers=operator.headers,
        json={
            "issuer": 341821,  # Langxi
            "key_id": kid,
            "public_key": base64.urlsafe_b64encode(
                partner.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
            ).decode(),
            "not_before": (now - timedelta(days=1)).isoformat(),
            "not_after": (now + timedelta(days=1)).isoformat(),
        },
    )
    assert r.status_code == 201, r.text
    trust._current, trust._verifier = held, Verifier(held, clock_skew_s=trust.clock_skew_s)  # not heard yet
    trust._last_recheck = -1e9
    terminal_id, key = await register_terminal(client, operator, kind="clinic")
    headers = await terminal_token(client, terminal_id, key)
    t = int(time.time())
    partner_code = issue_ankang_code(partner, bytes.fromhex(kid), 341821, b"\x01" * 16, "green", t)
    stranger = Ed25519PrivateKey.generate()
    unlisted = issue_ankang_code(stranger, bytes.fromhex("99999999"), 341821, b"\x02" * 16, "green", t)
    answers = await _upload(client, headers, [_record(partner_code), _record(unlisted)])
    assert answers == [("accepted", None), ("rejected", "credential.unknown_key")]
    assert trust.current.version > held.version
