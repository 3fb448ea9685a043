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
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from yima_sdk.codes import issue_ankang_code
from yima_sdk.holder import Holder
from yima_sdk.terminal import Terminal, TerminalCredentials

from server.seed import DEMO_OPERATOR_PHONE, DEMO_RESIDENT_PHONE
from tests.conftest import valid_id_number
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
from tests.onecard.helpers import card_number

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


def rider_with_card(server: RealServer, birth: str, folder: Path, phone: str | None = None) -> httpx.Client:
    """A verified resident born on `birth` (YYYYMMDD) with a one-card (the card the issuer recorded, linked)."""
    resident = sign_in(server, phone)
    for _ in range(5):  # a random sequence number may be taken already
        number = valid_id_number(birth=birth, seq=f"{secrets.randbelow(1000):03d}")
        r = resident.put("/v1/me/identity", json={"name": "王大爷", "id_number": number})
        if r.status_code != 409:
            break
    assert r.status_code == 200, r.text
    card = card_number()
    cards = folder / f"cards-{secrets.token_hex(4)}.csv"
    cards.write_text(f"{number},{card}\n")
    done = server.yima("onecard", "import-cards", str(cards))
    assert done.returncode == 0, done.stderr
    r = resident.post("/v1/me/onecard", json={"ss_card_number": card})
    assert r.status_code == 200, r.text
    return resident


def bus_terminal(
    server: RealServer, operator: httpx.Client, rider: httpx.Client, line: str, path: Path
) -> Terminal:
    """A bus terminal of `line` on the terminal SDK, synced, whose uploads go four times at once."""
    key = Ed25519PrivateKey.generate()
    body = {"name": f"{line}路 bus", "kind": "bus", "scene": APP, "unit": f"line:{line}",
            "public_key": public_key_b64(key)}  # fmt: skip
    r = operator.post("/v1/admin/terminals", json=body)
    assert r.status_code == 201, r.text
    registered = r.json()
    info = rider.get("/v1/trust-list/info").json()
    roots = {kid: base64.urlsafe_b64decode(k + "==") for kid, k in info["root_public_keys"].items()}
    transport = UploadsFourTimesAtOnce(
        server.url, TerminalCredentials(registered["id"], key), token_endpoint=registered["token_endpoint"]
    )
    terminal = Terminal(
        root_public_keys=roots, db_path=str(path), clock=time.time, clock_source="ntp", transport=transport,
        app_id=APP,
    )  # fmt: skip
    terminal.refresh()
    return terminal


def ride_codes_holder(rider: httpx.Client) -> Holder:
    holder = Holder.generate()
    r = rider.post("/v1/me/devices", json={"public_key": b64url(holder.device_public_key)})
    assert r.status_code == 201, r.text
    holder.install_certificate(base64.urlsafe_b64decode(r.json()["certificate"] + "=="))
    return holder


def resident_born(server: RealServer, birth: str) -> httpx.Client:
    """A verified resident born on `birth` (YYYYMMDD), without a one-card: a twin riding online."""
    resident = sign_in(server)
    for _ in range(5):  # a random sequence number may be taken already
        number = valid_id_number(birth=birth, seq=f"{secrets.randbelow(1000):03d}")
        r = resident.put("/v1/me/identity", json={"name": "李小红", "id_number": number})
        if r.status_code != 409:
            break
    assert r.status_code == 200, r.text
    return resident


def charged(rider: httpx.Client) -> list[int]:
    """What the bus app asked the rider's one-card for (online rides), smallest first."""
    return sorted(p["amount_fen"] for p in rider.get("/v1/me/payments").json() if p["app_id"] == APP)


def settled(rider: httpx.Client, rides: int) -> list[dict]:
    """The rider's offline rides once the app has all `rides` of them, each given back what it was owed."""
    time.sleep(0.4)  # the app's per-resident call quota: a few calls a second
    r = rider.get(f"{API}/rides")
    assert r.status_code == 200, r.text
    found = [x for x in r.json()["rides"] if x["mode"] == "offline"]
    assert len(found) == rides and all(x["settled_fen"] - x["returned_fen"] == x["fare_fen"] for x in found)
    return found


def test_offline_riders_pay_what_the_same_rides_cost_online_once(
    dev: tuple[RealServer, httpx.Client], tmp_path: Path
) -> None:
    """A senior (born 1950, birth date consented: 70 or more ride free) and a rider who changes buses ride offline
    through real terminals on the SDK; each upload goes four times at once, line 2's before line 1's (the
    transfer arrives before the ride it transfers from). Settlement charges the table's price once; the app gives
    back what the rider's own price is below it, once: each pays what twins of theirs pay for the same rides
    online, and the one-card statement shows the ride and what came back."""
    server, operator = dev
    senior = rider_with_card(server, "19500301", tmp_path)
    changer = rider_with_card(server, "19900301", tmp_path)
    senior_twin, changer_twin = resident_born(server, "19500301"), resident_born(server, "19900301")
    eventually(lambda: senior.get(f"{API}/lines").status_code == 200, limit_s=60)
    for rider in (senior, senior_twin):
        r = rider.put(f"/v1/me/consents/{APP}/birth_date", json={"granted": True})
        assert r.status_code == 200, r.text
    for rider in (senior, senior_twin, changer, changer_twin):
        assert rider.get(f"{API}/me").status_code == 200  # they use the app
    for rider in (senior, changer):
        top_up(rider, 2000)

    # Online, the twins: the senior rides line 1 free; the changer pays line 1 and line 2 less the transfer.
    online_1 = enrol_terminal(server, operator, "bus", APP, unit="line:1")
    online_2 = enrol_terminal(server, operator, "bus", APP, unit="line:2")
    assert scan_code(online_1, senior_twin)["miniapp"]["lines"] == ["1路 ¥0.00", "70岁以上免费 aged 70+"]
    scan_code(online_1, changer_twin)
    # a code boards once: the phone shows a fresh one (as after a lost phone) for the change of bus
    assert changer_twin.post("/v1/me/codes/ankang/revoke").status_code == 200
    assert "换乘优惠" in scan_code(online_2, changer_twin)["miniapp"]["lines"][1]

    assert charged(senior_twin) == []
    online_changer = charged(changer_twin)
    assert len(online_changer) == 2 and online_changer[0] < online_changer[1], online_changer

    # Offline: the same boardings through terminals on the SDK, each priced by the table it holds.
    line_1 = bus_terminal(server, operator, senior, "1", tmp_path / "line-1.sqlite")
    line_2 = bus_terminal(server, operator, senior, "2", tmp_path / "line-2.sqlite")
    try:
        holders = {"senior": ride_codes_holder(senior), "changer": ride_codes_holder(changer)}
        before = {name: r.get("/v1/me/onecard").json()["balance_fen"] for name, r in
                  (("senior", senior), ("changer", changer))}  # fmt: skip
        table_1, table_2 = line_1.fare("1"), line_2.fare("2")
        for name in ("senior", "changer"):
            decision = line_1.scan(holders[name].ride_code(line_1.now()), table_1)
            assert decision.result == "accept", decision
        decision = line_2.scan(holders["changer"].ride_code(line_2.now()), table_2)
        assert decision.result == "accept", decision
        assert line_2.upload_pending() == 1  # the later ride reaches the core first
        assert line_1.upload_pending() == 2
        assert line_1.upload_pending() == 0  # nothing left: each record was settled once
    finally:
        line_1.close()
        line_2.close()

    (ride,) = eventually(lambda: settled(senior, 1), limit_s=30)
    assert (ride["settled_fen"], ride["fare_fen"], ride["concession"]) == (table_1, 0, "senior_70")
    assert eventually(lambda: senior.get("/v1/me/onecard").json()["balance_fen"] == before["senior"])
    eventually(lambda: settled(changer, 2), limit_s=30)
    paid = before["changer"] - changer.get("/v1/me/onecard").json()["balance_fen"]
    assert paid == sum(online_changer), (paid, online_changer)
    statement = changer.get(f"{API}/statement").json()
    twin = changer_twin.get(f"{API}/statement").json()
    # the transfer came off the ride that arrived late, as its ride-order share (the later ride was charged)
    assert statement["paid_fen"] == sum(online_changer) == twin["fare_fen"], (statement, twin)
    assert statement["transfer_off_fen"] + statement["reordered_off_fen"] == twin["transfer_off_fen"] > 0

    # The one-card statements: each ride charged once at the table's price, and what came back, once.
    month = dt.datetime.now(dt.timezone(dt.timedelta(hours=8))).strftime("%Y-%m")
    for rider, rides, back in (
        (senior, [table_1], [table_1]),
        (changer, [table_1, table_2], [table_1 + table_2 - paid]),
    ):
        entries = rider.get("/v1/me/onecard/statements", params={"month": month}).json()["entries"]
        assert sorted(-e["amount_fen"] for e in entries if e["kind"] == "offline_ride") == sorted(rides)
        assert [e["amount_fen"] for e in entries if e["kind"] == "refund"] == back, entries


def test_a_transfer_uploaded_by_two_terminals_at_once_costs_what_it_costs_online() -> None:
    """Two riders change from line 1 to line 2 offline, and the two terminals upload at the same moment. The core
    delivers each terminal's rides side by side: YIMA_SCAN_OUTBOX_HOLD_S holds the events until the outbox's
    deliverer takes the head row of each terminal at once (rider A's line 1 beside A's line 2, then B's), and
    the bus app runs two workers. A rider's rides take turns in the app, so each is priced seeing the other:
    each rider pays what an online twin pays for the same boardings (the transfer is not lost), and the one-card
    shows each ride charged once and one refund."""
    with private_folder() as folder:
        env = server_env(
            "", folder / "data", redis=False, YIMA_DEV_FIRST_PARTY="1", YIMA_SCAN_OUTBOX_HOLD_S="2"
        )
        with real_server("dev", env=env) as server:
            operator = sign_in(server, DEMO_OPERATOR_PHONE)
            riders = [rider_with_card(server, "19900301", folder) for _ in range(2)]
            twin = resident_born(server, "19900301")
            eventually(lambda: twin.get(f"{API}/lines").status_code == 200, limit_s=60)
            for rider in (*riders, twin):
                assert rider.get(f"{API}/me").status_code == 200  # they use the app
            for rider in riders:
                top_up(rider, 2000)

            # Online, the twin boards line 1 and changes to line 2: 2 yuan, then 1 (the transfer).
            scan_code(enrol_terminal(server, operator, "bus", APP, unit="line:1"), twin)
            assert twin.post("/v1/me/codes/ankang/revoke").status_code == 200  # a fresh code for the next bus
            online_2 = enrol_terminal(server, operator, "bus", APP, unit="line:2")
            assert "换乘优惠" in scan_code(online_2, twin)["miniapp"]["lines"][1]
            online = charged(twin)
            assert len(online) == 2 and online[0] < online[1], online

            # Offline, the same boardings: A and B on line 1, then both on line 2; both terminals upload at once.
            line_1 = bus_terminal(server, operator, twin, "1", folder / "line-1.sqlite")
            line_2 = bus_terminal(server, operator, twin, "2", folder / "line-2.sqlite")
            try:
                holders = [ride_codes_holder(rider) for rider in riders]
                before = [rider.get("/v1/me/onecard").json()["balance_fen"] for rider in riders]
                tables = {"1": line_1.fare("1"), "2": line_2.fare("2")}
                for terminal, line in ((line_1, "1"), (line_2, "2")):
                    for holder in holders:
                        decision = terminal.scan(holder.ride_code(terminal.now()), tables[line])
                        assert decision.result == "accept", decision
                with ThreadPoolExecutor(2) as pool:
                    assert list(pool.map(Terminal.upload_pending, (line_1, line_2))) == [2, 2]
            finally:
                line_1.close()
                line_2.close()

            month = dt.datetime.now(dt.timezone(dt.timedelta(hours=8))).strftime("%Y-%m")
            twin_statement = twin.get(f"{API}/statement").json()
            for rider, start in zip(riders, before, strict=True):
                eventually(lambda rider=rider: settled(rider, 2), limit_s=60)
                paid = start - rider.get("/v1/me/onecard").json()["balance_fen"]
                assert paid == sum(online), (paid, online)
                statement = rider.get(f"{API}/statement").json()
                assert statement["paid_fen"] == twin_statement["fare_fen"] == sum(online), statement
                discount = statement["transfer_off_fen"] + statement["reordered_off_fen"]
                assert discount == twin_statement["transfer_off_fen"] > 0, (statement, twin_statement)
                entries = rider.get("/v1/me/onecard/statements", params={"month": month}).json()["entries"]
                rides = sorted(-e["amount_fen"] for e in entries if e["kind"] == "offline_ride")
                assert rides == sorted(tables.values())
                assert [e["amount_fen"] for e in entries if e["kind"] == "refund"] == [sum(rides) - paid], (
                    entries
                )
