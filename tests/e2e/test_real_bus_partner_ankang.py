"""一卡通行 with a partner county's Ankang code offline, through the real core (`yima dev` with the first-party apps,
on a database of its own): the operator puts Changxing's issuer key on the trust list; a bus terminal on the
terminal SDK syncs it, accepts offline a Changxing resident's Ankang code (signed by Changxing's key, real Ed25519)
and uploads it four times at once; the platform accepts it once, and the bus app records it once as a ride of the
full fare, charged to no one here, which Changxing owes in the day's clearing report."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from yima_sdk.codes import issue_ankang_code

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
CHANGXING, KID = 330522, "0c0a0522"


@pytest.fixture(scope="module")
def dev() -> Iterator[tuple[RealServer, httpx.Client, str]]:
    with seeded_dev() as dev:
        yield dev


def app_rides(dsn: str, issuer: int) -> list[dict[str, Any]]:
    """The rides the bus app recorded of `issuer`'s codes, as stored."""

    async def read() -> list[dict[str, Any]]:
        conn = await asyncpg.connect(dsn)
        try:
            rows = await conn.fetch(
                "SELECT body FROM miniapp_records WHERE app_id = $1 AND collection = 'rides'"
                " AND (body->>'issuer')::int = $2",
                APP,
                issuer,
            )
            return [json.loads(r["body"]) for r in rows]
        finally:
            await conn.close()

    return asyncio.run(read())


def test_a_partner_ankang_code_scanned_offline_is_owed_by_its_county_once(
    dev: tuple[RealServer, httpx.Client, str], tmp_path: Path
) -> None:
    server, operator, dsn = dev
    changxing = Ed25519PrivateKey.generate()
    now = dt.datetime.now(dt.UTC)
    key = {"issuer": CHANGXING, "key_id": KID, "public_key": public_key_b64(changxing),
           "credential_types": ["ankang_code"],
           "not_before": (now - dt.timedelta(days=1)).isoformat(), "not_after": (now + dt.timedelta(days=2)).isoformat()}  # fmt: skip
    r = operator.post("/v1/admin/trust-list/partner-keys", json=key)
    assert r.status_code == 201, r.text

    clerk = verified_resident(server)
    body = {"account_id": clerk.get("/v1/me").json()["id"], "role": "fares", "unit": None}
    assert operator.post(f"/v1/miniapps/{APP}/staff", json=body).status_code == 201
    terminal = bus_terminal(server, operator, clerk, "1", tmp_path / "bus-ankang.sqlite")
    try:
        # Offline, the terminal verifies the code against the trust list it synced (Changxing's key on it).
        code = issue_ankang_code(
            changxing, bytes.fromhex(KID), CHANGXING, os.urandom(16), "green", int(time.time())
        )
        decision = terminal.scan(code)
        assert decision.result == "accept", decision
        assert terminal.upload_pending() == 1  # each upload sent four times at once
        assert terminal.server_verdict(decision.record_id) == ("accepted", None)
    finally:
        terminal.close()

    # The bus app records the ride once, at line 1's full fare (no rider known here, nothing charged), and
    # counts it for Changxing's clearing of the day.
    today = dt.datetime.now(COUNTY_TIME).date().isoformat()

    def cleared() -> dict[str, Any] | None:
        time.sleep(0.4)  # the app's per-resident call quota
        r = clerk.get(f"{API}/fares/clearing", params={"day": today})
        assert r.status_code in (200, 404), r.text
        return dict(r.json()) if r.status_code == 200 else None

    (ride,) = eventually(lambda: app_rides(dsn, CHANGXING) or None, limit_s=30)
    assert {k: ride[k] for k in ("user_id", "mode", "credential_type", "line", "fare_fen", "payment_id", "day")} == {
        "user_id": None, "mode": "offline", "credential_type": "ankang_code", "line": "1", "fare_fen": 200,
        "payment_id": None, "day": today,
    }, ride  # fmt: skip
    fire_clearing_of(dsn, dt.date.fromisoformat(today))
    counties = {c["issuer"]: c for c in eventually(cleared, limit_s=30)["counties"]}
    assert (counties[CHANGXING]["rides"], counties[CHANGXING]["amount_fen"]) == (1, 200), counties
    assert all(c["rides"] == 0 for issuer, c in counties.items() if issuer != CHANGXING), counties
