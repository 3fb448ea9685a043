"""The bus rides app (miniapps/bus) through the real core: `yima dev` releases it with its demo fare table, the
fares staff publish a new version through the gateway, and a real bus terminal bound to a line scans a resident's
Ankang code: the sandboxed app prices the boarding and asks the resident's one-card for the fare; a partner
county's code, its key put on the trust list by the operator, rides uncharged (一卡通行). A terminal on the terminal
SDK syncs the fare tables the staff publish, prices an offline ride code, uploads it (four times at once), and
settlement charges the fare in force at the ride, once, keeping the terminal's older price beside it."""

from __future__ import annotations

import base64
import datetime as dt
import os
import secrets
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from yima_sdk.codes import issue_ankang_code
from yima_sdk.holder import Holder
from yima_sdk.terminal import Terminal, TerminalCredentials

from server.seed import DEMO_OPERATOR_PHONE, DEMO_RESIDENT_PHONE
from tests.credentials.helpers import public_key_b64
from tests.e2e._real import (
    RealServer,
    UploadsFourTimesAtOnce,
    b64url,
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


def top_up(resident: httpx.Client, fen: int) -> None:
    """A top-up paid at the payment simulator's cashier, over HTTP, waited for until it is credited."""
    r = resident.post(
        "/v1/me/onecard/topups", json={"amount_fen": fen}, headers={"Idempotency-Key": secrets.token_hex(8)}
    )
    assert r.status_code == 201, r.text
    order = r.json()
    cashier = resident.get(httpx.URL(order["pay_url"]).path).json()
    assert resident.post(httpx.URL(cashier["pay"]).path).status_code == 200
    eventually(lambda: resident.get(f"/v1/me/onecard/topups/{order['order_no']}").json()["credited"])


def test_a_fare_edit_reaches_a_real_terminal_and_settlement_charges_the_fare_in_force_once(
    dev: tuple[RealServer, httpx.Client], tmp_path: Path
) -> None:
    server, operator = dev
    rider = sign_in(server, DEMO_RESIDENT_PHONE)  # born 1990: no concession
    eventually(lambda: rider.get(f"{API}/lines").status_code == 200, limit_s=60)
    assert rider.get(f"{API}/me").status_code == 200  # she uses the app
    top_up(rider, 2000)
    holder = Holder.generate()  # her phone's offline ride code key, certified by the one-card
    r = rider.post("/v1/me/devices", json={"public_key": b64url(holder.device_public_key)})
    assert r.status_code == 201, r.text
    holder.install_certificate(base64.urlsafe_b64decode(r.json()["certificate"] + "=="))

    # A bus terminal of line 1 on the terminal SDK: its own key, signed in over HTTP, synced with the trust list.
    key = Ed25519PrivateKey.generate()
    body = {
        "name": "1路 bus 07",
        "kind": "bus",
        "scene": APP,
        "unit": "line:1",
        "public_key": public_key_b64(key),
    }
    r = operator.post("/v1/admin/terminals", json=body)
    assert r.status_code == 201, r.text
    registered = r.json()
    info = rider.get("/v1/trust-list/info").json()
    roots = {kid: base64.urlsafe_b64decode(k + "==") for kid, k in info["root_public_keys"].items()}
    transport = UploadsFourTimesAtOnce(
        server.url,
        TerminalCredentials(registered["id"], key),
        token_endpoint=registered["token_endpoint"],
    )
    terminal = Terminal(
        root_public_keys=roots, db_path=str(tmp_path / "bus-07.sqlite"), clock=time.time, clock_source="ntp",
        transport=transport, app_id=APP,
    )  # fmt: skip
    try:
        terminal.refresh()
        assert 1 in [d.version for d in terminal.documents("fares")]
        assert terminal.fare("1") == 200

        # A fares clerk publishes a version with line 1 at 3 yuan, in force in a few seconds; this terminal does
        # not sync again before its next ride.
        clerk = verified_resident(server)
        r = operator.post(
            f"/v1/miniapps/{APP}/staff",
            json={"account_id": clerk.get("/v1/me").json()["id"], "role": "fares"},
        )
        assert r.status_code == 201, r.text
        tables = clerk.get(f"{API}/fares/tables").json()["tables"]
        version = max(t["version"] for t in tables) + 1
        start = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=5)
        table = tables[0] | {"version": version, "effective_from": start.isoformat()}
        table["lines"] = tables[0]["lines"] | {"1": tables[0]["lines"]["1"] | {"flat_fen": 300}}
        r = clerk.put(f"{API}/fares/tables/{version}", json=table)
        assert r.status_code == 201, r.text
        eventually(lambda: dt.datetime.now(dt.UTC) > start + dt.timedelta(seconds=1), limit_s=30)

        # Offline: the terminal prices the boarding by the table it holds, and records the ride code.
        asked = terminal.fare("1")
        assert asked == 200
        decision = terminal.scan(holder.ride_code(terminal.now()), asked)
        assert decision.result == "accept", decision
        before = rider.get("/v1/me/onecard").json()["balance_fen"]
        assert terminal.upload_pending() == 1
        assert terminal.server_verdict(decision.record_id) == ("accepted", None)
        # Settlement charged the fare in force at the ride (3 yuan), once, whatever the four copies did.
        assert rider.get("/v1/me/onecard").json()["balance_fen"] == before - 300
        month = dt.datetime.now(dt.timezone(dt.timedelta(hours=8))).strftime("%Y-%m")
        entries = rider.get("/v1/me/onecard/statements", params={"month": month}).json()["entries"]
        rides = [e for e in entries if e["kind"] == "offline_ride"]
        assert [(e["amount_fen"], "the terminal asked 200 fen" in e["description"]) for e in rides] == [
            (-300, True)
        ]

        def recorded() -> list[dict]:
            time.sleep(0.4)  # the app's per-resident call quota: a few calls a second
            r = rider.get(f"{API}/rides")
            assert r.status_code == 200, r.text
            return [x for x in r.json()["rides"] if x["mode"] == "offline"]

        (ride,) = eventually(recorded)  # delivered to the app after the upload's answer
        assert (ride["table_version"], ride["terminal_fen"], ride["settled_fen"], ride["fare_fen"]) == (
            version, 200, 300, 300
        )  # fmt: skip
        today = dt.datetime.now(dt.timezone(dt.timedelta(hours=8))).date().isoformat()
        corrected = clerk.get(f"{API}/fares/repriced", params={"day": today}).json()["rides"]
        assert [(c["ride"], c["terminal_fen"], c["settled_fen"]) for c in corrected] == [
            (ride["id"], 200, 300)
        ]

        # Synced again, the terminal prices as settlement did; the same boarding online costs the same.
        terminal.refresh()
        assert terminal.fare("1") == 300
    finally:
        terminal.close()
    online = scan_code(enrol_terminal(server, operator, "bus", APP, unit="line:1"), rider)
    assert online["miniapp"]["lines"] == ["1路 ¥3.00"], online
