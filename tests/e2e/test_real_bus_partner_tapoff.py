"""一卡通行 tap-off (下车刷卡) through the real core (`yima dev` with the first-party apps, on a database of its own):
Changxing's issuer key on the trust list, Changxing residents' ride codes (device certificates Changxing's key
signed, real Ed25519) board the K2 (its stages: up to 2 stops 2 yuan, up to 5 stops 4 yuan) at the bus station and
tap off. The platform gives the bus app each code's pseudonym (`holder_ref`, never the certificate serial), so a
tap-off finds its own boarding: online (`POST /v1/scans` naming the stop) and offline (a terminal on the terminal
SDK, uploading four times at once), and Changxing owes the stage travelled on the day's clearing report, not the
top stage; a rider who does not tap off is owed at the top stage."""

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
    enrol_terminal,
    eventually,
    verified_resident,
)
from tests.e2e.test_real_bus import bus_terminal
from tests.e2e.test_real_bus_staff import fire_clearing_of

APP = "gov.guangde.bus"
API = f"/v1/miniapps/{APP}/api"
COUNTY_TIME = dt.timezone(dt.timedelta(hours=8))
CHANGXING, KID = 330522, "0c0a0524"
BACK = ["k2路 bus-station → xinhang", "一卡通行 按站计价 -¥2.00"]


@pytest.fixture(scope="module")
def dev() -> Iterator[tuple[RealServer, httpx.Client, str]]:
    with seeded_dev() as dev:
        yield dev


def outbox_empty(dsn: str) -> bool:
    """Whether every uploaded scan's event reached the app (none pending, none given up)."""

    async def count() -> int:
        conn = await asyncpg.connect(dsn)
        try:
            rows = await conn.fetch("SELECT status, attempt, last_error FROM scan_outbox")
            assert all(r["status"] != "failed" for r in rows), [dict(r) for r in rows]
            return sum(r["status"] == "pending" for r in rows)
        finally:
            await conn.close()

    return asyncio.run(count()) == 0


def changxing_holder(key: Ed25519PrivateKey, serial: bytes) -> Holder:
    """A Changxing resident's phone, its key certified by Changxing (we hold no one-card of theirs)."""
    holder = Holder.generate()
    certificate = issue_device_certificate(
        key,
        bytes.fromhex(KID),
        CHANGXING,
        serial,
        holder.device_public_key,
        int(time.time()) - 60,
        24,
        20,
        5000,
    )
    holder.install_certificate(certificate)
    return holder


def test_a_partner_riders_tap_off_makes_the_county_owe_the_stage_travelled(
    dev: tuple[RealServer, httpx.Client, str], tmp_path: Path
) -> None:
    server, operator, dsn = dev
    changxing = Ed25519PrivateKey.generate()
    now = dt.datetime.now(dt.UTC)
    key = {"issuer": CHANGXING, "key_id": KID, "public_key": public_key_b64(changxing),
           "credential_types": ["ankang_code", "device_certificate"],
           "not_before": (now - dt.timedelta(days=1)).isoformat(), "not_after": (now + dt.timedelta(days=2)).isoformat()}  # fmt: skip
    r = operator.post("/v1/admin/trust-list/partner-keys", json=key)
    assert r.status_code == 201, r.text
    li, wang, zhao = (changxing_holder(changxing, bytes([n]) * 16) for n in (0x21, 0x22, 0x23))

    # Online: Li and Wang board at the bus station (the top stage, owed by Changxing); Li taps off at Xinhang.
    online = enrol_terminal(server, operator, "bus", APP, unit="line:k2")

    def scan(holder: Holder, stop: str, tap: str = "on") -> list[str]:
        body = {"payload": holder.ride_code(int(time.time())), "scanned_at": int(time.time() * 1000),
                "stop": stop, "tap": tap}  # fmt: skip
        r = online.post("/v1/scans", json=body)
        assert r.status_code == 200 and r.json()["result"] == "accept", r.text
        return list(r.json()["miniapp"]["lines"])

    assert scan(li, "bus-station") == ["k2路 ¥4.00", "一卡通行 长兴 Changxing"]
    assert scan(wang, "bus-station") == ["k2路 ¥4.00", "一卡通行 长兴 Changxing"]
    assert scan(li, "xinhang", "off") == BACK

    # Offline: Zhao boards at the bus station and taps off at Taozhou, one stop on, with the same code.
    clerk = verified_resident(server)
    body = {"account_id": clerk.get("/v1/me").json()["id"], "role": "fares", "unit": None}
    assert operator.post(f"/v1/miniapps/{APP}/staff", json=body).status_code == 201
    terminal = bus_terminal(server, operator, clerk, "k2", tmp_path / "k2-partner.sqlite")
    try:
        fare = terminal.fare("k2", "bus-station")
        assert fare == 400
        code = zhao.ride_code(terminal.now())
        assert terminal.scan(code, fare, stop="bus-station").result == "accept"
        assert terminal.scan(code, stop="taozhou", tap="off").result == "accept"
        assert terminal.upload_pending() == 2  # each upload sent four times at once
    finally:
        terminal.close()

    # Cleared once the app has handled the uploaded scans (their outbox is empty): Li's stage (2 yuan), Wang's
    # top stage (4 yuan), Zhao's stage (2 yuan).
    eventually(lambda: outbox_empty(dsn), limit_s=30)
    today = dt.datetime.now(COUNTY_TIME).date()
    fire_clearing_of(dsn, today)

    def rides_owed() -> list[dict[str, Any]] | None:
        time.sleep(0.4)  # the app's per-resident call quota
        r = clerk.get(f"{API}/fares/clearing", params={"day": today.isoformat()})
        assert r.status_code in (200, 404), r.text
        return list(r.json()["rides"]) if r.status_code == 200 else None

    owed = eventually(rides_owed, limit_s=30)
    assert sorted((r["mode"], r["fare_fen"]) for r in owed) == [
        ("offline", 200), ("online", 200), ("online", 400),
    ], owed  # fmt: skip
    r = clerk.get(f"{API}/fares/clearing", params={"day": today.isoformat(), "format": "csv"})
    assert f"{today},{CHANGXING},长兴 Changxing,3,800,0" in r.text.splitlines(), r.text
