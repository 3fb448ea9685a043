"""一卡通行 offline through the real core (`yima dev` with the first-party apps, on a database of its own): the
operator puts Langxi's issuer key on the trust list; a bus terminal on the terminal SDK syncs it, accepts offline a
Langxi resident's ride code (a device certificate Langxi's key signed, real Ed25519) and uploads it four times at
once; settlement re-prices it by the fare in force and records it once as a ride Langxi owes, charged to no
one-card here; the bus app counts it in the day's clearing report for Langxi."""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from yima_sdk.codes import issue_device_certificate
from yima_sdk.holder import Holder

from tests.credentials.helpers import public_key_b64
from tests.e2e._bus import seeded_dev
from tests.e2e._real import (
    RealServer,
    eventually,
    verified_resident,
)
from tests.e2e.test_real_bus import bus_terminal
from tests.e2e.test_real_bus_staff import fire_clearing_of

APP = "gov.guangde.bus"
API = f"/v1/miniapps/{APP}/api"
COUNTY_TIME = dt.timezone(dt.timedelta(hours=8))
LANGXI, KID = 341821, "1a2b3c4d"


@pytest.fixture(scope="module")
def dev() -> Iterator[tuple[RealServer, httpx.Client, str]]:
    with seeded_dev() as dev:
        yield dev


def stored_rides(dsn: str, serial: bytes) -> list[dict[str, Any]]:
    async def read() -> list[dict[str, Any]]:
        conn = await asyncpg.connect(dsn)
        try:
            rows = await conn.fetch(
                """SELECT status, amount_fen, terminal_fen, onecard_account_id, partner_issuer, journal_id
                   FROM onecard_offline_rides WHERE certificate_serial = $1""",
                serial,
            )
            return [dict(r) for r in rows]
        finally:
            await conn.close()

    return asyncio.run(read())


def test_a_partner_ride_code_scanned_offline_is_owed_by_its_county_once(
    dev: tuple[RealServer, httpx.Client, str], tmp_path: Path
) -> None:
    server, operator, dsn = dev
    langxi = Ed25519PrivateKey.generate()
    now = dt.datetime.now(dt.UTC)
    key = {"issuer": LANGXI, "key_id": KID, "public_key": public_key_b64(langxi),
           "credential_types": ["ankang_code", "device_certificate"],
           "not_before": (now - dt.timedelta(days=1)).isoformat(), "not_after": (now + dt.timedelta(days=2)).isoformat()}  # fmt: skip
    r = operator.post("/v1/admin/trust-list/partner-keys", json=key)
    assert r.status_code == 201, r.text
    # A Langxi resident's phone, its key certified by Langxi (not by us: we hold no one-card of theirs).
    holder = Holder.generate()
    certificate = issue_device_certificate(
        langxi, bytes.fromhex(KID), LANGXI, b"\x05" * 16, holder.device_public_key,
        int(time.time()) - 60, 24, 20, 5000,
    )  # fmt: skip
    holder.install_certificate(certificate)
    assert holder.certificate is not None

    clerk = verified_resident(server)
    body = {"account_id": clerk.get("/v1/me").json()["id"], "role": "fares", "unit": None}
    assert operator.post(f"/v1/miniapps/{APP}/staff", json=body).status_code == 201
    terminal = bus_terminal(server, operator, clerk, "1", tmp_path / "bus-partner.sqlite")
    try:
        # Offline, the terminal verifies the code against the trust list it synced; it asks less than the fare
        # in force (line 1: 2 yuan), as a terminal holding an older table would.
        decision = terminal.scan(holder.ride_code(terminal.now()), 150)
        assert decision.result == "accept", decision
        assert terminal.upload_pending() == 1  # each upload sent four times at once
        assert terminal.server_verdict(decision.record_id) == ("accepted", None)
    finally:
        terminal.close()

    # Recorded once, owed by Langxi at the fare in force, charged to no one-card and in no journal of ours.
    assert stored_rides(dsn, holder.certificate.serial) == [
        {"status": "settled", "amount_fen": 200, "terminal_fen": 150, "onecard_account_id": None,
         "partner_issuer": LANGXI, "journal_id": None}
    ]  # fmt: skip

    # The bus app hears of it (re-priced: it lists the correction), then clears it for Langxi.
    today = dt.datetime.now(COUNTY_TIME).date().isoformat()

    def repriced() -> list[dict[str, Any]]:
        time.sleep(0.4)  # the app's per-resident call quota
        r = clerk.get(f"{API}/fares/repriced", params={"day": today})
        assert r.status_code == 200, r.text
        return list(r.json()["rides"])

    (ride,) = eventually(repriced, limit_s=30)
    assert (ride["terminal_fen"], ride["settled_fen"]) == (150, 200), ride
    fire_clearing_of(dsn, dt.date.fromisoformat(today))

    def cleared() -> dict[str, Any] | None:
        r = clerk.get(f"{API}/fares/clearing", params={"day": today})
        assert r.status_code in (200, 404), r.text
        return dict(r.json()) if r.status_code == 200 else None

    counties = {c["issuer"]: c for c in eventually(cleared, limit_s=30)["counties"]}
    assert (counties[LANGXI]["rides"], counties[LANGXI]["amount_fen"]) == (1, 200), counties
