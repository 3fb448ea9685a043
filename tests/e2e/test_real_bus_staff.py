"""The bus app's staff flows through the real core (`yima dev` with the first-party apps, on a database of its
own): a disputed fare refunded by the fares staff, for an online boarding (this app's charge) and for an offline
ride code settled at upload (settlement's charge), once each, as the one-card shows; a concession granted by the
concessions staff with an expiry, halving the fare until then; and the daily clearing report of a partner
county's rides (一卡通行), as JSON and CSV, the same when asked again and when its job runs again; the operator's
`yima jobs run` runs the job now, clearing yesterday."""

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

from server.seed import DEMO_OPERATOR_PHONE
from tests.credentials.helpers import public_key_b64
from tests.e2e._real import (
    RealServer,
    enrol_terminal,
    eventually,
    fresh_database,
    private_folder,
    real_server,
    scan_code,
    server_env,
    sign_in,
    verified_resident,
)
from tests.e2e.test_real_bus import bus_terminal, ride_codes_holder, rider_with_card, settled, top_up

APP = "gov.guangde.bus"
API = f"/v1/miniapps/{APP}/api"
COUNTY_TIME = dt.timezone(dt.timedelta(hours=8))


class Dev:
    def __init__(self, server: RealServer, operator: httpx.Client, dsn: str) -> None:
        self.server, self.operator, self.dsn = server, operator, dsn

    def staff(self, role: str, unit: str | None = None) -> httpx.Client:
        """A resident the operator grants `role` of the bus app (at `unit`)."""
        clerk = verified_resident(self.server)
        body = {"account_id": clerk.get("/v1/me").json()["id"], "role": role, "unit": unit}
        r = self.operator.post(f"/v1/miniapps/{APP}/staff", json=body)
        assert r.status_code == 201, r.text
        return clerk


@pytest.fixture(scope="module")
def dev() -> Iterator[Dev]:
    with private_folder() as folder, fresh_database() as dsn:
        env = server_env(dsn, folder / "data", redis=False, YIMA_DEV_FIRST_PARTY="1")
        with real_server("dev", env=env) as server:
            operator = sign_in(server, DEMO_OPERATOR_PHONE)
            watcher = verified_resident(server)
            eventually(lambda: watcher.get(f"{API}/lines").status_code == 200, limit_s=60)  # seeded
            yield Dev(server, operator, dsn)


def balance(rider: httpx.Client) -> int:
    return int(rider.get("/v1/me/onecard").json()["balance_fen"])


def refunds(rider: httpx.Client) -> list[int]:
    month = dt.datetime.now(COUNTY_TIME).strftime("%Y-%m")
    entries = rider.get("/v1/me/onecard/statements", params={"month": month}).json()["entries"]
    return [e["amount_fen"] for e in entries if e["kind"] == "refund"]


def dispute_and_refund(dev: Dev, rider: httpx.Client, ride: dict[str, Any], paid: int) -> None:
    """The rider disputes the ride; a fares clerk refunds what it cost, once; asked again, refused."""
    r = rider.post(f"{API}/rides/{ride['id']}/dispute", json={"reason": "charged twice"})
    assert r.status_code == 201, r.text
    clerk = dev.staff("fares")
    assert [d["ride"] for d in clerk.get(f"{API}/fares/disputes").json()["disputes"]].count(ride["id"]) == 1
    path = f"{API}/fares/disputes/{ride['id']}/refund"
    too_much = clerk.post(path, json={"amount_fen": paid + 1})
    assert too_much.status_code == 400 and too_much.json()["code"] == "bus.bad_refund", too_much.text
    before = balance(rider)
    r = clerk.post(path, json={"note": "the bus log shows one boarding"})
    assert r.status_code == 200, r.text
    assert r.json() == {"ride": ride["id"], "status": "refunded", "refunded_fen": paid}
    again = clerk.post(path, json={})
    assert again.status_code == 409 and again.json()["code"] == "bus.dispute_closed", again.text
    assert balance(rider) == before + paid
    statement = rider.get(f"{API}/statement").json()
    assert (statement["refunded_fen"], statement["paid_fen"]) == (paid, 0), statement


def test_a_disputed_online_fare_is_refunded_once(dev: Dev, tmp_path: Path) -> None:
    rider = rider_with_card(dev.server, "19900301", tmp_path)
    assert rider.get(f"{API}/me").status_code == 200  # she uses the app
    top_up(rider, 1000)
    answer = scan_code(enrol_terminal(dev.server, dev.operator, "bus", APP, unit="line:1"), rider)
    assert answer["miniapp"]["lines"] == ["1路 ¥2.00"], answer
    (payment,) = [p for p in rider.get("/v1/me/payments").json() if p["app_id"] == APP]
    r = rider.post(f"/v1/me/payments/{str(payment['id']).removeprefix('pay_')}/confirm")
    assert r.status_code == 200 and r.json()["status"] == "succeeded", r.text
    assert balance(rider) == 800
    (ride,) = rider.get(f"{API}/rides").json()["rides"]
    assert ride["payment_status"] == "succeeded"
    dispute_and_refund(dev, rider, ride, 200)
    assert balance(rider) == 1000
    assert refunds(rider) == [200]


def test_a_disputed_offline_ride_is_refunded_once_from_settlements_charge(dev: Dev, tmp_path: Path) -> None:
    """An offline ride code on a terminal of the SDK, uploaded four times at once: settlement charges the
    table's price once; the ride, disputed, is refunded from that charge, once."""
    rider = rider_with_card(dev.server, "19900301", tmp_path)
    assert rider.get(f"{API}/me").status_code == 200
    top_up(rider, 1000)
    terminal = bus_terminal(dev.server, dev.operator, rider, "1", tmp_path / "line-1.sqlite")
    try:
        fare = terminal.fare("1")
        decision = terminal.scan(ride_codes_holder(rider).ride_code(terminal.now()), fare)
        assert decision.result == "accept", decision
        assert terminal.upload_pending() == 1
    finally:
        terminal.close()
    (ride,) = eventually(lambda: settled(rider, 1), limit_s=30)
    assert (ride["settled_fen"], ride["fare_fen"]) == (fare, fare)
    assert ride["payment_id"].startswith("ride_"), ride
    assert balance(rider) == 1000 - fare
    dispute_and_refund(dev, rider, ride, fare)
    assert balance(rider) == 1000
    assert refunds(rider) == [fare]


def test_a_concession_granted_with_an_expiry_halves_the_fare_until_then(dev: Dev) -> None:
    rider = verified_resident(dev.server)
    user_id = rider.get(f"{API}/me").json()["user_id"]
    expires = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=8)
    grant = {"user_id": user_id, "category": "student", "expires_at": expires.isoformat()}
    refused = rider.post(f"{API}/concessions/grants", json=grant)
    assert refused.status_code == 403, refused.text
    clerk = dev.staff("concessions")
    r = clerk.post(f"{API}/concessions/grants", json=grant | {"expires_at": "2030-01-01T00:00:00"})
    assert r.status_code == 400 and r.json()["code"] == "bus.expiry_needs_zone", r.text
    assert clerk.post(f"{API}/concessions/grants", json=grant).status_code == 201
    assert [c["category"] for c in rider.get(f"{API}/me").json()["concessions"]] == ["student"]

    terminal = enrol_terminal(dev.server, dev.operator, "bus", APP, unit="line:1")
    assert scan_code(terminal, rider)["miniapp"]["lines"] == ["1路 ¥1.00", "学生半价 student"]
    eventually(lambda: dt.datetime.now(dt.UTC) > expires + dt.timedelta(seconds=1), limit_s=20)
    assert rider.post("/v1/me/codes/ankang/revoke").status_code == 200  # a fresh code for the next bus
    assert scan_code(terminal, rider)["miniapp"]["lines"] == ["1路 ¥2.00"]
    rides = rider.get(f"{API}/rides").json()["rides"]
    assert [(r["concession"], r["fare_fen"]) for r in rides] == [("student", 100), (None, 200)]


def fire_clearing_of(dsn: str, day: dt.date) -> None:
    """Run now the `clear` schedule's firing of 00:30 the day after `day`, as the runner would run it then (the
    job is told its firing time and clears the county day before it): moved in the schedule's row, since
    `yima jobs run` fires as of now, clearing yesterday. Run again, it is that firing once more (as after a
    runner that died before recording its success)."""

    async def due_now() -> None:
        conn = await asyncpg.connect(dsn)
        try:
            firing = dt.datetime.combine(day + dt.timedelta(days=1), dt.time(0, 30), COUNTY_TIME)
            moved = await conn.fetchval(
                "UPDATE miniapp_jobs SET due_at = $2, run_at = now() WHERE app_id = $1 AND name = 'clear'"
                " AND schedule IS NOT NULL RETURNING id",
                APP,
                firing,
            )
            assert moved is not None, "the released bus app has its clear schedule"
        finally:
            await conn.close()

    asyncio.run(due_now())


def test_a_partner_countys_rides_are_cleared_daily_as_json_and_csv(dev: Dev) -> None:
    changxing = Ed25519PrivateKey.generate()
    now = dt.datetime.now(dt.UTC)
    key = {"issuer": 330522, "key_id": "0c0a0523", "public_key": public_key_b64(changxing),
           "not_before": (now - dt.timedelta(days=1)).isoformat(), "not_after": (now + dt.timedelta(days=2)).isoformat()}  # fmt: skip
    r = dev.operator.post("/v1/admin/trust-list/partner-keys", json=key)
    assert r.status_code == 201, r.text
    terminals = {
        line: enrol_terminal(dev.server, dev.operator, "bus", APP, unit=f"line:{line}")
        for line in ("1", "k2")
    }

    def ride(line: str) -> list[str]:
        code = issue_ankang_code(
            changxing, bytes.fromhex("0c0a0523"), 330522, os.urandom(16), "green", int(time.time())
        )
        body = {"payload": code, "scanned_at": int(time.time() * 1000)}
        r = terminals[line].post("/v1/scans", json=body)
        assert r.status_code == 200 and r.json()["result"] == "accept", r.text
        return list(r.json()["miniapp"]["lines"])

    assert ride("1") == ["1路 ¥2.00", "一卡通行 长兴 Changxing"]
    assert ride("k2") == ["k2路 ¥4.00", "一卡通行 长兴 Changxing"]

    clerk = dev.staff("fares")
    day = dt.datetime.now(COUNTY_TIME).date()
    fire_clearing_of(dev.dsn, day)

    def cleared(day: dt.date) -> dict[str, Any]:
        def kept() -> dict[str, Any] | None:
            r = clerk.get(f"{API}/fares/clearing", params={"day": day.isoformat()})
            assert r.status_code in (200, 404), r.text
            return dict(r.json()) if r.status_code == 200 else None

        return dict(eventually(kept, limit_s=30))

    report = cleared(day)
    counties = {c["issuer"]: c for c in report["counties"]}
    assert (counties[330522]["rides"], counties[330522]["amount_fen"]) == (2, 600), report
    assert (counties[330523]["rides"], counties[330523]["amount_fen"]) == (0, 0), report
    csv = clerk.get(f"{API}/fares/clearing", params={"day": day.isoformat(), "format": "csv"})
    assert csv.status_code == 200 and csv.headers["content-type"].startswith("text/csv"), csv.text
    assert f"{day},330522,长兴 Changxing,2,600,0" in csv.text.splitlines()
    assert [(r["issuer"], r["line"], r["fare_fen"], r["late"]) for r in report["rides"]] == [
        (330522, "1", 200, False), (330522, "k2", 400, False),
    ]  # fmt: skip
    # Changxing's clearing clerk, granted the partner role at county:330522, reads Changxing's rows only.
    changxing_clerk = dev.staff("partner", "county:330522")
    own = changxing_clerk.get(f"{API}/partner/clearing", params={"day": day.isoformat()})
    assert own.status_code == 200, own.text
    assert [c["issuer"] for c in own.json()["counties"]] == [330522] and own.json()["rides"] == report[
        "rides"
    ]
    anji_clerk = dev.staff("partner", "county:330523")
    theirs = anji_clerk.get(f"{API}/partner/clearing", params={"day": day.isoformat()}).json()
    assert ([c["issuer"] for c in theirs["counties"]], theirs["rides"]) == ([330523], [])
    assert changxing_clerk.get(f"{API}/fares/clearing", params={"day": day.isoformat()}).status_code == 403

    # The operator's way, `yima jobs run`: the job fires now, so it clears yesterday (nothing rode then).
    eventually(lambda: next_firing(dev.dsn) > dt.datetime.now(dt.UTC), limit_s=30)  # the firing's run is over
    done = dev.server.yima("jobs", "run", APP, "clear")
    assert done.returncode == 0, done.stderr
    owed = {c["issuer"]: c["rides"] for c in cleared(day - dt.timedelta(days=1))["counties"]}
    assert owed[330522] == 0, owed
    eventually(lambda: next_firing(dev.dsn) > dt.datetime.now(dt.UTC), limit_s=30)  # that run is over

    # A later ride, then the same firing again: the day's report stays what was cleared (the counties were sent it).
    assert ride("1")[0] == "1路 ¥2.00"
    fire_clearing_of(dev.dsn, day)
    eventually(lambda: next_firing(dev.dsn) > dt.datetime.now(dt.UTC), limit_s=30)
    assert clerk.get(f"{API}/fares/clearing", params={"day": day.isoformat()}).json() == report
    again = clerk.get(f"{API}/fares/clearing", params={"day": day.isoformat(), "format": "csv"})
    assert again.text == csv.text
    # That later ride of a cleared day is owed on the next report (the firing of the day after), marked late.
    fire_clearing_of(dev.dsn, day + dt.timedelta(days=1))
    nxt = cleared(day + dt.timedelta(days=1))
    assert [(r["issuer"], r["day"], r["late"]) for r in nxt["rides"]] == [(330522, day.isoformat(), True)]
    assert {c["issuer"]: c["late_rides"] for c in nxt["counties"]}[330522] == 1
    rider = verified_resident(dev.server)
    assert rider.get(f"{API}/fares/clearing", params={"day": day.isoformat()}).status_code == 403


def next_firing(dsn: str) -> dt.datetime:
    async def run_at() -> dt.datetime:
        conn = await asyncpg.connect(dsn)
        try:
            when: dt.datetime = await conn.fetchval(
                "SELECT run_at FROM miniapp_jobs WHERE app_id = $1 AND name = 'clear' AND schedule IS NOT NULL",
                APP,
            )
            return when
        finally:
            await conn.close()

    return asyncio.run(run_at())


def test_a_revoked_concession_ends_for_the_next_ride_online_and_offline(dev: Dev, tmp_path: Path) -> None:
    """A student grant, listed for the staff; a boarding at half fare on a real terminal on the SDK; revoked:
    the next boarding online pays the full fare, and so does a ride code scanned offline after it (settlement's
    charge stands, nothing given back)."""
    rider = rider_with_card(dev.server, "20050301", tmp_path)
    user_id = rider.get(f"{API}/me").json()["user_id"]
    top_up(rider, 1000)
    clerk = dev.staff("concessions")
    expires = dt.datetime.now(dt.UTC) + dt.timedelta(days=30)
    grant = {"user_id": user_id, "category": "student", "expires_at": expires.isoformat()}
    past = clerk.post(f"{API}/concessions/grants", json=grant | {"expires_at": "2026-01-01T00:00:00+08:00"})
    assert past.status_code == 400 and past.json()["code"] == "bus.expiry_in_past", past.text
    assert clerk.post(f"{API}/concessions/grants", json=grant).status_code == 201
    listed = clerk.get(f"{API}/concessions/grants", params={"user_id": user_id}).json()["grants"]
    assert [(g["category"], g["active"]) for g in listed] == [("student", True)]

    terminal = bus_terminal(dev.server, dev.operator, rider, "1", tmp_path / "line-1-revoke.sqlite")
    try:

        def board() -> list[str]:
            assert rider.post("/v1/me/codes/ankang/revoke").status_code == 200  # a fresh code each bus
            code = rider.get("/v1/me/codes/ankang").json()["payload"]
            answer = json.loads(terminal._transport.scan_online(code, int(time.time() * 1000)))
            return list(answer["miniapp"]["lines"])

        assert board() == ["1路 ¥1.00", "学生半价 student"]
        r = clerk.post(f"{API}/concessions/grants/{user_id}.student/revoke", json={"reason": "left school"})
        assert r.status_code == 200 and r.json()["active"] is False, r.text
        assert board() == ["1路 ¥2.00"]
        fare = terminal.fare("1")
        decision = terminal.scan(ride_codes_holder(rider).ride_code(terminal.now()), fare)
        assert decision.result == "accept", decision
        assert terminal.upload_pending() == 1
    finally:
        terminal.close()
    (offline,) = eventually(lambda: settled(rider, 1), limit_s=30)
    assert (offline["concession"], offline["settled_fen"], offline["returned_fen"]) == (None, 200, 0)
    rides = rider.get(f"{API}/rides").json()["rides"]
    assert [(r["mode"], r["concession"], r["fare_fen"]) for r in rides] == [
        ("online", "student", 100), ("online", None, 200), ("offline", None, 200),
    ]  # fmt: skip
    assert refunds(rider) == []
