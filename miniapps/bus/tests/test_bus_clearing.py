"""一卡通行 clearing against the simulator: each day's report lists every partner ride it owes (ride, time, line,
fare, nobody's personal data), a ride uploaded after its day was cleared is owed on the next report (late), never
on two, whatever reruns; a partner county's staff read their own county's rows only."""

from __future__ import annotations

import asyncio
import datetime as dt
from pathlib import Path

from bus_days import seeded_at_wednesday_10, to_wednesday_10
from yima_sdk.simulator import AsyncSimulator
from yima_sdk.testing import MiniApp

CHANGXING, ANJI = 330522, 330523


def report(miniapp: MiniApp, day: dt.date, user: str = "carol", **query: str) -> dict:
    r = miniapp.get("/fares/clearing", user=user, query={"day": day.isoformat(), **query})
    assert r.status == 200, r.body
    return dict(r.json())


def test_each_partner_ride_is_owed_once_with_its_row_late_ones_on_the_next_report(miniapp: MiniApp) -> None:
    wednesday = to_wednesday_10(miniapp)
    miniapp.grant_staff("carol", "fares")
    assert miniapp.scan("bus", user=None, unit="line:1", issuer=CHANGXING)[0] == "1路 ¥2.00"
    assert miniapp.scan("bus", user=None, unit="line:k2", issuer=CHANGXING)[0] == "k2路 ¥4.00"
    assert miniapp.scan("bus", user=None, unit="line:2", issuer=ANJI)[0] == "2路 ¥2.00"
    assert miniapp.scan("bus", user="alice", unit="line:1") == ["请先开通一码乘车 Open 一码乘车 once to ride"]
    miniapp.advance(days=1)  # Thursday 10:00: the 00:30 job cleared Wednesday
    wed = report(miniapp, wednesday.date())
    owed = {c["issuer"]: (c["rides"], c["amount_fen"], c["late_rides"]) for c in wed["counties"]}
    assert owed[CHANGXING] == (2, 600, 0) and owed[ANJI] == (1, 200, 0)
    wed_day = wednesday.date().isoformat()
    assert [(r["issuer"], r["line"], r["fare_fen"], r["late"], r["day"]) for r in wed["rides"]] == [
        (CHANGXING, "1", 200, False, wed_day), (CHANGXING, "k2", 400, False, wed_day), (ANJI, "2", 200, False, wed_day),
    ]  # fmt: skip
    assert all(
        set(r) == {"ride", "issuer", "day", "at", "line", "fare_fen", "mode", "late"} for r in wed["rides"]
    )
    assert len({r["ride"] for r in wed["rides"]}) == 3

    # A Changxing ride code scanned offline on Wednesday 15:00, uploaded on Thursday after Wednesday was cleared,
    # and a Thursday boarding: Wednesday's report stays as issued, even when its job runs again now.
    offline_at = wednesday.replace(hour=15).astimezone(dt.UTC)
    late = miniapp.scan("bus", user=None, unit="line:1", issuer=CHANGXING, mode="offline",
                        credential_type="ride_code", amount_fen=200, settled_fen=200, scanned_at=offline_at)  # fmt: skip
    assert late[0] == "1路 ¥2.00"
    assert miniapp.scan("bus", user=None, unit="line:2", issuer=CHANGXING)[0] == "2路 ¥2.00"
    miniapp.schedule_job("clear")  # a rerun of the firing, as of now: it clears Wednesday again
    assert [r.ok for r in miniapp.advance(seconds=1) if r.name == "clear"] == [True]
    assert report(miniapp, wednesday.date()) == wed

    miniapp.advance(days=1)  # Friday: Thursday cleared, with the late Wednesday ride on it
    thursday = wednesday.date() + dt.timedelta(days=1)
    thu = report(miniapp, thursday)
    owed = {c["issuer"]: (c["rides"], c["amount_fen"], c["late_rides"]) for c in thu["counties"]}
    assert owed[CHANGXING] == (2, 400, 1) and owed[ANJI] == (0, 0, 0)
    rows = [(r["day"], r["mode"], r["late"]) for r in thu["rides"]]
    assert rows == [(wednesday.date().isoformat(), "offline", True), (thursday.isoformat(), "online", False)]
    assert {r["ride"] for r in thu["rides"]}.isdisjoint(r["ride"] for r in wed["rides"])
    miniapp.advance(days=1)  # Saturday: Friday's report owes nothing; the late ride is on Thursday's alone
    assert all(c["rides"] == 0 for c in report(miniapp, thursday + dt.timedelta(days=1))["counties"])

    csv = miniapp.get("/fares/clearing", user="carol", query={"day": thursday.isoformat(), "format": "csv",
                                                             "rows": "rides"})  # fmt: skip
    lines = csv.text.splitlines()
    assert csv.headers["content-type"].startswith("text/csv")
    assert lines[0] == "ride,issuer,day,at,line,fare_fen,mode,late"
    assert [line.split(",")[-1] for line in lines[1:]] == ["true", "false"]
    summary = miniapp.get(
        "/fares/clearing", user="carol", query={"day": thursday.isoformat(), "format": "csv"}
    )
    assert summary.text.splitlines()[0] == "day,issuer,county,rides,amount_fen,late_rides"
    assert f"{thursday},{CHANGXING},长兴 Changxing,2,400,1" in summary.text.splitlines()


def test_a_partner_countys_staff_read_their_own_rows_only(miniapp: MiniApp) -> None:
    wednesday = to_wednesday_10(miniapp)
    miniapp.scan("bus", user=None, unit="line:1", issuer=CHANGXING)
    miniapp.scan("bus", user=None, unit="line:2", issuer=ANJI)
    miniapp.advance(days=1)
    day = {"day": wednesday.date().isoformat()}
    miniapp.grant_staff("grandpa", "partner", f"county:{CHANGXING}")  # Changxing's clearing clerk
    mine = miniapp.get("/partner/clearing", user="grandpa", query=day).json()
    assert [(c["issuer"], c["rides"], c["amount_fen"]) for c in mine["counties"]] == [(CHANGXING, 1, 200)]
    assert [(r["issuer"], r["line"]) for r in mine["rides"]] == [(CHANGXING, "1")]
    csv = miniapp.get("/partner/clearing", user="grandpa", query=day | {"format": "csv", "rows": "rides"})
    assert len(csv.text.splitlines()) == 2 and f",{CHANGXING}," in csv.text.splitlines()[1]
    assert miniapp.get("/fares/clearing", user="grandpa", query=day).status == 403  # not every county's
    assert (
        miniapp.get("/partner/clearing", user="alice", query=day).json()["code"] == "miniapp.staff_required"
    )
    miniapp.grant_staff("alice", "partner")  # held app-wide: names no county, so it reads none
    refused = miniapp.get("/partner/clearing", user="alice", query=day)
    assert (refused.status, refused.json()["code"]) == (403, "bus.county_required")
    miniapp.grant_staff("carol", "fares")  # Guangde's fares staff read every county
    assert len(report(miniapp, wednesday.date())["rides"]) == 2


async def test_uploads_arriving_while_the_day_is_cleared_are_each_owed_once(miniapp_folder: Path) -> None:
    """Twenty Changxing ride codes scanned on Wednesday evening are uploaded while the 00:30 job clears
    Wednesday (the app's two workers: the job in one, the uploads in the other, side by side): each ride is on
    Wednesday's report or, if it came too late for it, on Thursday's, never on both, never on neither."""
    async with AsyncSimulator(miniapp_folder) as sim:
        wednesday = await seeded_at_wednesday_10(sim)
        await sim.advance(hours=14, minutes=29, seconds=59)  # Thursday 00:29:59
        scanned = [
            (wednesday.replace(hour=21) + dt.timedelta(minutes=i)).astimezone(dt.UTC) for i in range(20)
        ]
        uploads = [
            sim.scan("bus", user=None, unit="line:1", issuer=CHANGXING, mode="offline", credential_type="ride_code",
                     amount_fen=200, settled_fen=200, scanned_at=at, terminal_id=f"bus-{i}")
            for i, at in enumerate(scanned)
        ]  # fmt: skip
        await asyncio.gather(
            *uploads[:8], sim.advance(seconds=2), *uploads[8:]
        )  # the clear job of 00:30 among them
        await sim.advance(days=1)  # Friday 00:30: Thursday cleared
        sim.platform.grant_staff("carol", "fares")
        reports = []
        for day in (wednesday.date(), wednesday.date() + dt.timedelta(days=1)):
            r = await sim.request("GET", "/fares/clearing", user="carol", query={"day": day.isoformat()})
            reports.append(r.json())
        owed = [[r["ride"] for r in report["rides"]] for report in reports]
        assert len(owed[0]) + len(owed[1]) == 20 and not set(owed[0]) & set(owed[1])
        for report, rides in zip(reports, owed, strict=True):
            (changxing,) = (c for c in report["counties"] if c["issuer"] == CHANGXING)
            assert (changxing["rides"], changxing["amount_fen"]) == (len(rides), 200 * len(rides))
        assert all(r["late"] for r in reports[1]["rides"]) and not any(r["late"] for r in reports[0]["rides"])
