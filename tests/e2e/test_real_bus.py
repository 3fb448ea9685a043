"""The bus rides app (miniapps/bus) through the real core: `yima dev` releases it with its demo fare table, the
fares staff publish a new version through the gateway, and a real bus terminal bound to a line scans a resident's
Ankang code: the sandboxed app prices the boarding and asks the resident's one-card for the fare; a partner
county's code, its key put on the trust list by the operator, rides uncharged (一卡通行)."""

from __future__ import annotations

import datetime as dt
import os
import time
from collections.abc import Iterator

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from yima_sdk.codes import issue_ankang_code

from server.seed import DEMO_OPERATOR_PHONE
from tests.credentials.helpers import public_key_b64
from tests.e2e._real import (
    RealServer,
    enrol_terminal,
    eventually,
    private_folder,
    real_server,
    scan_code,
    server_env,
    sign_in,
    verified_resident,
)

APP = "gov.guangde.bus"
API = f"/v1/miniapps/{APP}/api"


@pytest.fixture(scope="module")
def dev() -> Iterator[tuple[RealServer, httpx.Client]]:
    with private_folder() as folder:
        env = server_env("", folder / "data", redis=False, YIMA_DEV_FIRST_PARTY="1")
        with real_server("dev", env=env) as server:
            yield server, sign_in(server, DEMO_OPERATOR_PHONE)


def test_a_boarding_scan_on_a_real_terminal_is_priced_and_charged(
    dev: tuple[RealServer, httpx.Client],
) -> None:
    server, operator = dev
    rider = verified_resident(server)

    def seeded() -> bool:
        r = rider.get(f"{API}/lines")
        assert r.status_code in (200, 404), r.text + server.output()[-3000:]
        return r.status_code == 200 and r.json()["lines"]["1"]["flat_fen"] == 200

    eventually(seeded, limit_s=60)

    # A fares clerk (granted by the operator) publishes version 2: from now on, never back-dated.
    clerk = verified_resident(server)
    body = {"account_id": clerk.get("/v1/me").json()["id"], "role": "fares", "unit": None}
    r = operator.post(f"/v1/miniapps/{APP}/staff", json=body)
    assert r.status_code == 201, r.text
    table = clerk.get(f"{API}/fares/tables").json()["tables"][0]
    past = clerk.put(f"{API}/fares/tables/2", json=table | {"version": 2})
    assert past.status_code == 409 and past.json()["code"] == "bus.table_in_past", past.text
    soon = (dt.datetime.now(dt.UTC) + dt.timedelta(days=30)).isoformat()
    assert (
        clerk.put(f"{API}/fares/tables/2", json=table | {"version": 2, "effective_from": soon}).status_code
        == 201
    )
    assert (
        rider.put(f"{API}/fares/tables/3", json=table | {"version": 3, "effective_from": soon}).status_code
        == 403
    )

    terminal = enrol_terminal(server, operator, "bus", APP, unit="line:1")
    answer = scan_code(terminal, rider)
    assert answer["result"] == "accept", answer
    assert answer["miniapp"]["lines"] == ["1路 ¥2.00"], answer
    (ride,) = rider.get(f"{API}/rides").json()["rides"]
    assert (ride["line"], ride["table_version"], ride["fare_fen"], ride["mode"]) == ("1", 1, 200, "online")
    assert ride["issuer"] == 341822  # the scan names the code's issuer: partner rides are cleared
    payments = [p for p in rider.get("/v1/me/payments").json() if p["app_id"] == APP]
    assert [(p["amount_fen"], p["status"]) for p in payments] == [(200, "pending_confirmation")], payments

    # 一卡通行: the operator puts Changxing's issuer key on the trust list; a Changxing resident's code rides line
    # 1, is not charged here, and counts for Changxing's clearing.
    changxing = Ed25519PrivateKey.generate()
    now = dt.datetime.now(dt.UTC)
    key = {"issuer": 330522, "key_id": "0c0a0522", "public_key": public_key_b64(changxing),
           "not_before": (now - dt.timedelta(days=1)).isoformat(), "not_after": (now + dt.timedelta(days=1)).isoformat()}  # fmt: skip
    r = operator.post("/v1/admin/trust-list/partner-keys", json=key)
    assert r.status_code == 201, r.text
    code = issue_ankang_code(
        changxing, bytes.fromhex("0c0a0522"), 330522, os.urandom(16), "green", int(time.time())
    )
    r = terminal.post("/v1/scans", json={"payload": code, "scanned_at": int(time.time() * 1000)})
    assert r.status_code == 200 and r.json()["result"] == "accept", r.text
    assert r.json()["miniapp"]["lines"] == ["1路 ¥2.00", "一卡通行 长兴 Changxing"], r.text
