"""The bus rides app against the simulator: boarding scans priced and charged by the fare engine (transfer,
concessions by age and by staff grant), a new fare table version taking effect at its time, the rider's rides and
statement, and a disputed fare refunded by the fares staff."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pytest
from bus_days import seeded_at_wednesday_10, to_wednesday_10
from yima_sdk import VersionConflict
from yima_sdk.cron import COUNTY_TIME
from yima_sdk.simulator import AsyncSimulator
from yima_sdk.terminal import Terminal
from yima_sdk.testing import MiniApp


def test_rides_priced_charged_shown_and_a_disputed_fare_refunded(miniapp: MiniApp) -> None:
    miniapp.switches.payment_confirmation = "auto"  # riders in this test agreed to pay rides without a prompt
    wednesday = to_wednesday_10(miniapp)
    for rider in ("alice", "grandpa", "carol"):
        assert miniapp.get("/lines", user=rider).json()["lines"]["k2"]["stages"][-1]["fare_fen"] == 400
    balance = miniapp.platform.balances["alice"]

    assert miniapp.scan("bus", user="alice", unit="line:1") == ["1路 ¥2.00"]
    miniapp.advance(minutes=30)
    assert miniapp.scan("bus", user="alice", unit="line:2") == ["2路 ¥1.00", "换乘优惠 transfer -¥1.00"]
    # Born 1948: 70 or more rides free; the staged K2 charges its top stage (the terminal cannot know the stop).
    assert miniapp.scan("bus", user="grandpa", unit="line:k2") == ["k2路 ¥0.00", "70岁以上免费 aged 70+"]
    assert miniapp.scan("bus", user="alice", unit="nowhere") == [
        "终端未绑定线路 This terminal serves no line"
    ]
    assert miniapp.platform.balances["alice"] == balance - 300

    # The fares staff publish version 2 (line 1 at 3 yuan) from 11:00; versions are immutable, never back-dated.
    v2 = miniapp.get("/fares/tables", user="alice").json()["tables"][0] | {"version": 2}
    v2["lines"]["1"]["flat_fen"] = 300
    v2["effective_from"] = (wednesday + dt.timedelta(hours=1)).isoformat()
    refused = miniapp.put("/fares/tables/2", user="carol", json=v2)
    assert refused.status == 403 and refused.json()["code"] == "miniapp.staff_required"
    miniapp.grant_staff("carol", "fares")
    past = miniapp.put(
        "/fares/tables/2", user="carol", json=v2 | {"effective_from": "2026-02-01T00:00:00+08:00"}
    )
    assert past.json()["code"] == "bus.table_in_past"
    broken = miniapp.put("/fares/tables/2", user="carol", json=v2 | {"concessions": {"student": 101}})
    assert broken.json()["code"] == "bus.bad_fare_table"
    assert miniapp.put("/fares/tables/2", user="carol", json=v2).status == 201
    assert miniapp.put("/fares/tables/2", user="carol", json=v2).json()["code"] == "bus.version_exists"
    miniapp.advance(hours=2)
    assert miniapp.scan("bus", user="alice", unit="line:1") == ["1路 ¥3.00"]  # 12:30, version 2, no transfer

    month = wednesday.strftime("%Y-%m")
    rides = miniapp.get("/rides", user="alice", query={"month": month}).json()["rides"]
    assert [(r["line"], r["table_version"], r["fare_fen"], r["transfer"]) for r in rides] == [
        ("1", 1, 200, False), ("2", 1, 100, True), ("1", 2, 300, False),
    ]  # fmt: skip
    statement = miniapp.get("/statement", user="alice", query={"month": month}).json()
    assert (statement["rides"], statement["transfers"], statement["base_fen"]) == (3, 1, 700)
    assert (statement["transfer_off_fen"], statement["paid_fen"]) == (100, 600)

    # Alice disputes the 3-yuan ride; only she can, once; the fares staff refund it.
    third = rides[2]["id"]
    assert miniapp.post(f"/rides/{third}/dispute", user="grandpa", json={"reason": "x"}).status == 404
    assert (
        miniapp.post(f"/rides/{third}/dispute", user="alice", json={"reason": "I tapped twice"}).status == 201
    )
    again = miniapp.post(f"/rides/{third}/dispute", user="alice", json={"reason": "again"})
    assert again.json()["code"] == "bus.already_disputed"
    assert [d["ride"] for d in miniapp.get("/fares/disputes", user="carol").json()["disputes"]] == [third]
    refunded = miniapp.post(f"/fares/disputes/{third}/refund", user="carol", json={"note": "double tap"})
    assert refunded.json() == {"ride": third, "status": "refunded", "refunded_fen": 300}
    assert miniapp.platform.balances["alice"] == balance - 300
    assert miniapp.get("/statement", user="alice", query={"month": month}).json()["paid_fen"] == 300
    assert [m["title"] for m in miniapp.inbox("alice")][-1] == "票价已退 Fare refunded"


def test_a_rejected_dispute_tells_the_rider_and_refunds_nothing(miniapp: MiniApp) -> None:
    """The fares staff reject Alice's dispute: she hears it in her inbox with their reason, nothing comes back,
    and the decision stands (a refund or a second reject afterwards is `bus.dispute_closed`)."""
    miniapp.switches.payment_confirmation = "auto"
    month = to_wednesday_10(miniapp).strftime("%Y-%m")
    miniapp.grant_staff("carol", "fares")
    assert miniapp.get("/me", user="alice").status == 200  # she opened the app once
    assert miniapp.scan("bus", user="alice", unit="line:1") == ["1路 ¥2.00"]
    balance = miniapp.platform.balances["alice"]
    (ride,) = miniapp.get("/rides", user="alice", query={"month": month}).json()["rides"]
    assert miniapp.post(f"/rides/{ride['id']}/dispute", user="alice", json={"reason": "x"}).status == 201
    rejected = miniapp.post(
        f"/fares/disputes/{ride['id']}/reject", user="carol", json={"note": "one tap logged"}
    )
    assert rejected.json() == {"ride": ride["id"], "status": "rejected"}
    (told,) = [m for m in miniapp.inbox("alice") if m["title"] == "票价申诉未获退款 Dispute declined"]
    assert told["body"] == "one tap logged"
    for decision in ("refund", "reject"):
        again = miniapp.post(f"/fares/disputes/{ride['id']}/{decision}", user="carol", json={})
        assert again.json()["code"] == "bus.dispute_closed"
    assert miniapp.platform.balances["alice"] == balance
    statement = miniapp.get("/statement", user="alice", query={"month": month}).json()
    assert (statement["refunded_fen"], statement["paid_fen"]) == (0, 200)


def test_an_online_boarding_that_never_gets_its_turn_is_refused_and_not_charged(
    miniapp: MiniApp, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every commit of the ride loses to another ride of the rider's month (10 times): an online boarding reaches
    the app once, nothing delivers it again, so the terminal hears that the ride was not recorded and the rider
    scans again; nothing is charged. Then the month is quiet: the next scan is recorded and charged once."""
    miniapp.switches.payment_confirmation = "auto"
    month = to_wednesday_10(miniapp).strftime("%Y-%m")
    assert miniapp.get("/lines", user="alice").status == 200
    balance = miniapp.platform.balance("alice")
    db = miniapp.platform.db
    commit = db.commit

    def always_beaten(writes: list[Any], reads: list[Any]) -> list[int]:
        if any(getattr(w, "collection", None) == "rides" for w in writes):
            raise VersionConflict("rider_months changed since the transaction read it")
        return commit(writes, reads)

    monkeypatch.setattr(db, "commit", always_beaten)
    assert miniapp.scan("bus", user="alice", unit="line:1") == [
        "乘车未记录 请重新扫码",
        "Ride not recorded: scan again",
    ]
    assert miniapp.platform.balance("alice") == balance and miniapp.payments == []
    assert miniapp.get("/rides", user="alice", query={"month": month}).json()["rides"] == []
    assert any(entry.get("event") == "ride not recorded" for entry in miniapp.logs)

    monkeypatch.undo()
    assert miniapp.scan("bus", user="alice", unit="line:1") == ["1路 ¥2.00"]
    assert miniapp.platform.balance("alice") == balance - 200


def test_a_boarding_the_app_cannot_charge_keeps_the_rider_off(miniapp: MiniApp) -> None:
    """A terminal bound to no line, a rider who never opened the app, a line with no fare (a Guangde code or a
    partner county's): nothing is recorded or charged, so the terminal must not let the rider on."""
    miniapp.switches.payment_confirmation = "auto"
    to_wednesday_10(miniapp)
    assert miniapp.get("/me", user="alice").status == 200  # alice uses the app; grandpa never opened it
    balance = miniapp.platform.balance("alice")
    refused = [
        miniapp.scan_reply("bus", user="alice", unit="nowhere"),
        miniapp.scan_reply("bus", user="grandpa", unit="line:1"),
        miniapp.scan_reply("bus", user="alice", unit="line:99"),
        miniapp.scan_reply("bus", user=None, issuer=330522, unit="line:99"),
    ]
    assert [(r.lines[0], r.admit) for r in refused] == [
        ("终端未绑定线路 This terminal serves no line", False),
        ("请先开通一码乘车 Open 一码乘车 once to ride", False),
        ("票价未配置 No fare for this line", False),
        ("票价未配置 No fare for this line", False),
    ]
    assert miniapp.platform.balance("alice") == balance and miniapp.payments == []
    ridden = miniapp.scan_reply("bus", user="alice", unit="line:1")
    assert (ridden.lines, ridden.admit) == (["1路 ¥2.00"], None)  # a ride charged: the terminal lets her on


def test_a_concession_granted_by_staff_applies_until_it_expires(miniapp: MiniApp) -> None:
    miniapp.switches.payment_confirmation = "auto"
    wednesday = to_wednesday_10(miniapp)
    carol = miniapp.get("/me", user="carol").json()["user_id"]
    grant = {
        "user_id": carol,
        "category": "student",
        "expires_at": (wednesday + dt.timedelta(days=1)).isoformat(),
    }
    assert miniapp.post("/concessions/grants", user="alice", json=grant).status == 403
    miniapp.grant_staff("alice", "concessions")
    assert miniapp.post("/concessions/grants", user="alice", json=grant | {"category": "vip"}).status == 400
    assert miniapp.post("/concessions/grants", user="alice", json=grant).status == 201
    assert [c["category"] for c in miniapp.get("/me", user="carol").json()["concessions"]] == ["student"]
    miniapp.platform.balances["carol"] = 1000
    assert miniapp.scan("bus", user="carol", unit="line:1") == ["1路 ¥1.00", "学生半价 student"]
    miniapp.advance(days=2)  # the grant has expired; Friday 10:00
    assert miniapp.scan("bus", user="carol", unit="line:1") == ["1路 ¥2.00"]
    assert miniapp.platform.balances["carol"] == 700


def test_a_fare_waits_for_the_riders_confirmation_and_the_statement_says_so(miniapp: MiniApp) -> None:
    month = to_wednesday_10(miniapp).strftime(
        "%Y-%m"
    )  # payments are confirmed by hand here, as in production
    assert miniapp.get("/me", user="alice").status == 200
    assert miniapp.scan("bus", user="alice", unit="line:2") == ["2路 ¥2.00"]
    (ride,) = miniapp.get("/rides", user="alice", query={"month": month}).json()["rides"]
    assert ride["payment_status"] == "pending_confirmation"
    before = miniapp.get("/statement", user="alice", query={"month": month}).json()
    assert (before["paid_fen"], before["pending_fen"]) == (0, 200)
    miniapp.confirm_payment(ride["payment_id"])
    (ride,) = miniapp.get("/rides", user="alice", query={"month": month}).json()["rides"]
    assert ride["payment_status"] == "succeeded"
    after = miniapp.get("/statement", user="alice", query={"month": month}).json()
    assert (after["paid_fen"], after["pending_fen"]) == (200, 0)


def test_partner_county_codes_ride_and_a_daily_clearing_report_is_kept(miniapp: MiniApp) -> None:
    wednesday = to_wednesday_10(miniapp)
    # Riders from Changxing and Anji show their own county's codes on line 1 and the staged K2.
    assert miniapp.scan("bus", user=None, unit="line:1", issuer=330522) == [
        "1路 ¥2.00",
        "一卡通行 长兴 Changxing",
    ]
    assert miniapp.scan("bus", user=None, unit="line:k2", issuer=330522) == [
        "k2路 ¥4.00",
        "一卡通行 长兴 Changxing",
    ]
    assert miniapp.scan("bus", user=None, unit="line:2", issuer=330523) == ["2路 ¥2.00", "一卡通行 安吉 Anji"]
    assert miniapp.scan("bus", user=None, unit="line:1", issuer=341822) == [
        "请先开通一码乘车 Open 一码乘车 once to ride"
    ]
    assert miniapp.payments == []  # nothing charged here: the counties owe it
    miniapp.grant_staff("carol", "fares")
    day = wednesday.date().isoformat()
    assert (
        miniapp.get("/fares/clearing", user="carol", query={"day": day}).json()["code"] == "bus.not_cleared"
    )
    runs = miniapp.advance(days=1)  # Thursday: the 00:30 job has cleared Wednesday
    assert [r.ok for r in runs if r.name == "clear"] == [True]
    report = miniapp.get("/fares/clearing", user="carol", query={"day": day}).json()["counties"]
    owed = {r["issuer"]: (r["rides"], r["amount_fen"]) for r in report}
    assert owed[330522] == (2, 600) and owed[330523] == (1, 200) and owed[320481] == (0, 0)
    # Asked again: the same report, as CSV too.
    again = miniapp.get("/fares/clearing", user="carol", query={"day": day}).json()["counties"]
    assert again == report
    csv = miniapp.get("/fares/clearing", user="carol", query={"day": day, "format": "csv"})
    assert csv.headers["content-type"].startswith("text/csv")
    assert f"{day},330522,长兴 Changxing,2,600,0" in csv.text.splitlines()
    assert miniapp.get("/fares/clearing", user="alice", query={"day": day}).status == 403


def test_fare_tables_reach_terminals_and_settlement_reprices_offline_rides(
    miniapp: MiniApp, tmp_path: Path
) -> None:
    """A version the fares staff publish reaches a bus terminal (signed, synced, applied from its time); an offline
    ride a terminal priced with an older table is charged the fare in force when it happened, and listed."""
    wednesday = to_wednesday_10(miniapp)  # the seed job published version 1 to the terminals
    terminal = Terminal(
        root_public_keys=miniapp.platform.credentials.root_public_keys,
        db_path=str(tmp_path / "bus-terminal.sqlite"),
        clock=lambda: miniapp.now,
        clock_source="ntp",
        app_id="gov.guangde.bus",
    )
    try:
        assert terminal.load_documents(miniapp.platform.terminal_documents()) == 1
        assert (terminal.fare("1"), terminal.fare("k2")) == (200, 400)
        miniapp.grant_staff("carol", "fares")
        v2 = miniapp.get("/fares/tables", user="carol").json()["tables"][0] | {"version": 2}
        v2["lines"]["1"]["flat_fen"] = 300
        v2["effective_from"] = (wednesday + dt.timedelta(hours=1)).isoformat()
        assert miniapp.put("/fares/tables/2", user="carol", json=v2).status == 201
        assert terminal.load_documents(miniapp.platform.terminal_documents()) == 2
        assert terminal.fare("1") == 200  # 10:00: version 2 takes effect at 11:00
        miniapp.advance(hours=2)
        assert terminal.fare("1") == 300
    finally:
        terminal.close()

    # A terminal that missed the sync priced a 12:00 boarding of line 1 at 2 yuan: settlement charges 3 yuan.
    assert miniapp.get("/me", user="alice").status == 200
    lines = miniapp.scan(
        "bus", user="alice", unit="line:1", mode="offline", credential_type="ride_code", amount_fen=200
    )
    assert lines == ["1路 ¥3.00"]
    (ride,) = miniapp.get("/rides", user="alice", query={"month": wednesday.strftime("%Y-%m")}).json()[
        "rides"
    ]
    assert (ride["table_version"], ride["terminal_fen"], ride["settled_fen"]) == (2, 200, 300)
    # settled by the platform (its ride's payment), never charged again by the app
    assert [(p["id"], p["amount_fen"]) for p in miniapp.payments] == [(ride["payment_id"], 300)]
    day = {"day": wednesday.date().isoformat()}
    (corrected,) = miniapp.get("/fares/repriced", user="carol", query=day).json()["rides"]
    assert (corrected["ride"], corrected["terminal_fen"], corrected["settled_fen"]) == (ride["id"], 200, 300)
    assert miniapp.get("/fares/repriced", user="alice", query=day).status == 403


def test_the_monthly_cap_stops_charging_for_the_rest_of_the_month(miniapp: MiniApp) -> None:
    """The demo table caps a month at 150 yuan (a day at 8): from the 1st, two K2 rides a day (4 yuan each) reach
    the daily cap; on the 19th the month reaches 150 yuan, and the 20th's ride is free, the terminal saying so."""
    miniapp.switches.payment_confirmation = "auto"
    wednesday = to_wednesday_10(miniapp)
    first = (wednesday.replace(day=1) + dt.timedelta(days=32)).replace(day=1)  # the 1st of next month, 10:00
    miniapp.advance(seconds=first.timestamp() - miniapp.now)
    assert miniapp.get("/me", user="alice").status == 200
    miniapp.platform.balances["alice"] = 100_000
    for _day in range(18):
        assert [miniapp.scan("bus", user="alice", unit="line:k2") for _ in range(2)] == [["k2路 ¥4.00"]] * 2
        miniapp.advance(days=1)
    assert miniapp.scan("bus", user="alice", unit="line:k2") == ["k2路 ¥4.00"]  # the 19th: 148 yuan so far
    miniapp.advance(minutes=61)  # past the transfer window
    assert miniapp.scan("bus", user="alice", unit="line:1") == ["1路 ¥2.00"]  # 150 yuan: the month's cap
    miniapp.advance(days=1)
    assert miniapp.scan("bus", user="alice", unit="line:1") == ["1路 ¥0.00", "已达封顶 fare cap reached"]
    assert miniapp.platform.balances["alice"] == 100_000 - 15_000
    statement = miniapp.get("/statement", user="alice", query={"month": first.strftime("%Y-%m")}).json()
    assert (statement["rides"], statement["paid_fen"], statement["cap_off_fen"]) == (39, 15_000, 200)


async def _disputed_ride(sim: AsyncSimulator) -> str:
    """Alice's 2-yuan ride on line 1, charged and disputed; carol is fares staff."""
    sim.switches.payment_confirmation = "auto"
    month = (await seeded_at_wednesday_10(sim)).strftime("%Y-%m")
    assert (await sim.request("GET", "/me", user="alice")).status == 200
    assert await sim.scan("bus", user="alice", unit="line:1") == ["1路 ¥2.00"]
    (ride,) = (await sim.request("GET", "/rides", user="alice", query={"month": month})).json()["rides"]
    dispute = await sim.request("POST", f"/rides/{ride['id']}/dispute", user="alice", json={"reason": "x"})
    assert dispute.status == 201
    sim.platform.grant_staff("carol", "fares")
    return str(ride["id"])


async def test_a_reject_while_the_refund_is_paid_is_refused_and_the_dispute_ends_refunded(
    miniapp_folder: Path,
) -> None:
    """The fares staff reject a dispute while another of them is refunding it, between the money moving and the
    record: the reject is refused (the refund is under way), the dispute ends refunded, Alice's balance up once."""
    async with AsyncSimulator(miniapp_folder) as sim:
        ride = await _disputed_ride(sim)
        balance = sim.platform.balance("alice")
        handle = sim.platform.handle
        rejects = []

        async def reject_meanwhile(call: Any, capability: str, operation: str, *rest: Any) -> Any:
            if (capability, operation) == ("payments", "refund"):
                rejects.append(
                    await sim.request("POST", f"/fares/disputes/{ride}/reject", user="carol", json={})
                )
            return await handle(call, capability, operation, *rest)

        sim.platform.handle = reject_meanwhile  # type: ignore[method-assign]
        refunded = await sim.request("POST", f"/fares/disputes/{ride}/refund", user="carol", json={})
        assert refunded.json() == {"ride": ride, "status": "refunded", "refunded_fen": 200}
        assert [(r.status, r.json()["code"]) for r in rejects] == [(409, "bus.dispute_refunding")]
        assert sim.platform.balance("alice") == balance + 200
        listed = await sim.request("GET", "/fares/disputes", user="carol", query={"status": "refunded"})
        assert [d["ride"] for d in listed.json()["disputes"]] == [ride]
        again = await sim.request("POST", f"/fares/disputes/{ride}/reject", user="carol", json={})
        assert (again.status, again.json()["code"]) == (409, "bus.dispute_closed")


async def test_a_refund_cut_after_the_money_moved_is_completed_when_asked_again(miniapp_folder: Path) -> None:
    """The record of a refund fails after the money moved: the dispute stays refunding (a reject is refused);
    asked again, even with another amount, it completes the recorded refund, and Alice is refunded once."""
    async with AsyncSimulator(miniapp_folder) as sim:
        ride = await _disputed_ride(sim)
        balance = sim.platform.balance("alice")
        db = sim.platform.db
        commit = db.commit

        def record_fails(writes: list[Any], reads: list[Any]) -> list[int]:
            if any(getattr(w, "collection", None) == "rides" for w in writes):
                raise RuntimeError("the database went away")
            return commit(writes, reads)

        db.commit = record_fails  # type: ignore[method-assign]
        cut = await sim.request(
            "POST", f"/fares/disputes/{ride}/refund", user="carol", json={"amount_fen": 150}
        )
        assert cut.status >= 500
        assert sim.platform.balance("alice") == balance + 150
        db.commit = commit  # type: ignore[method-assign]
        reject = await sim.request("POST", f"/fares/disputes/{ride}/reject", user="carol", json={})
        assert (reject.status, reject.json()["code"]) == (409, "bus.dispute_refunding")

        retried = await sim.request(
            "POST", f"/fares/disputes/{ride}/refund", user="carol", json={"amount_fen": 100}
        )
        assert retried.json() == {"ride": ride, "status": "refunded", "refunded_fen": 150}
        assert sim.platform.balance("alice") == balance + 150
        month = (
            dt.datetime.fromtimestamp(sim.platform.clock(), dt.UTC).astimezone(COUNTY_TIME).strftime("%Y-%m")
        )
        statement = (await sim.request("GET", "/statement", user="alice", query={"month": month})).json()
        assert statement["paid_fen"] == 50
