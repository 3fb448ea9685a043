"""The gate's rules against the simulator: a ticket enters within its slot's hours (from 30 minutes before the
start until the end; an offline scan judged at the time it was scanned), the Ankang code finds the ticket whose
slot is open, a ticket never charged is refused, and a partner county's Ankang code is told to show the pass."""

from __future__ import annotations

import datetime as dt

import pytest
from yima_sdk.cron import COUNTY_TIME
from yima_sdk.errors import CapabilityFailed
from yima_sdk.testing import MiniApp

TAIJI = "spot:taiji-cave"  # no re-entry
CHANGXING = 330522


def seeded(miniapp: MiniApp) -> dt.date:
    """Run the app's seed job as `yima dev` does (two slots a day, 09:00-12:00 and 13:00-16:00); today."""
    miniapp.schedule_job("seed", key="yima-dev-seed")
    assert [run.ok for run in miniapp.advance(seconds=1) if run.name == "seed"] == [True]
    return dt.datetime.fromtimestamp(miniapp.now, COUNTY_TIME).date()


def clock_to(miniapp: MiniApp, day: dt.date, hhmm: str) -> None:
    """Move the simulator's clock on to `hhmm` of `day`, county time."""
    at = dt.datetime.combine(day, dt.time.fromisoformat(hhmm), COUNTY_TIME).timestamp()
    assert at > miniapp.now
    miniapp.advance(seconds=at - miniapp.now)


def at(day: dt.date, hhmm: str) -> dt.datetime:
    return dt.datetime.combine(day, dt.time.fromisoformat(hhmm), COUNTY_TIME)


def paid_ticket(miniapp: MiniApp, user: str, slot: str) -> dict:
    ticket = miniapp.post(f"/slots/{slot}/reserve", user=user).json()
    if ticket["payment_id"]:
        assert miniapp.confirm_payment(ticket["payment_id"])["status"] == "succeeded"
    return dict(ticket)


def entered(miniapp: MiniApp, user: str) -> dict[str, int]:
    return {t["start"]: t["entered"] for t in miniapp.get("/tickets", user=user).json()["tickets"]}


def test_a_ticket_enters_within_its_slots_hours_and_the_ankang_code_finds_the_open_one(
    miniapp: MiniApp,
) -> None:
    tomorrow = seeded(miniapp) + dt.timedelta(days=1)
    morning, afternoon = (f"taiji-cave.{tomorrow.isoformat()}.{h}" for h in ("09", "13"))
    for user in ("alice", "carol"):
        miniapp.platform.balances[user] = 50_000
    for slot in (morning, afternoon):  # grandpa (70 or more: free) holds both slots of the day
        paid_ticket(miniapp, "grandpa", slot)
    alice = paid_ticket(miniapp, "alice", afternoon)
    carol = paid_ticket(miniapp, "carol", morning)
    miniapp.grant_staff("alice", "gate_keeper", TAIJI)

    def check(payload: str, check_id: str) -> dict:
        body = {"spot": "taiji-cave", "payload": payload, "check_id": check_id}
        r = miniapp.post("/gate/check", user="alice", json=body)
        assert r.status == 200, r.json()
        return dict(r.json())

    # 08:00: too early for either of his slots; the gate tells the first one's hours
    clock_to(miniapp, tomorrow, "08:00")
    assert miniapp.scan("scenic", user="grandpa", unit=TAIJI) == [
        "未到入园时间 Too early: 09:00-12:00",
        "太极洞 Taiji Cave",
    ]
    refused = check(alice["pass"]["payload"], "early")
    assert (refused["admit"], refused["lines"][0]) == (False, "未到入园时间 Too early: 13:00-16:00")
    # an offline gate let carol in at 08:10: uploaded at once, it is judged at 08:10 (refused, not counted)
    scanned = at(tomorrow, "08:10")
    assert (
        miniapp.scan(
            "scenic", unit=TAIJI, app_pass=carol["pass"]["payload"], mode="offline", scanned_at=scanned
        )
        == []
    )
    assert entered(miniapp, "carol") == {"09:00": 0}

    # 08:30, half an hour before the slot: the morning ticket enters, the afternoon one stays unused
    clock_to(miniapp, tomorrow, "08:30")
    assert miniapp.scan("scenic", user="grandpa", unit=TAIJI)[0] == "请入园 Welcome"
    assert entered(miniapp, "grandpa") == {"09:00": 1, "13:00": 0}
    # 10:00: no re-entry at 太极洞, and his afternoon ticket is not for now
    clock_to(miniapp, tomorrow, "10:00")
    assert miniapp.scan("scenic", user="grandpa", unit=TAIJI)[0] == "未到入园时间 Too early: 13:00-16:00"
    assert entered(miniapp, "grandpa") == {"09:00": 1, "13:00": 0}

    # 12:40: the afternoon tickets enter (within the half hour before 13:00)
    clock_to(miniapp, tomorrow, "12:40")
    assert check(alice["pass"]["payload"], "in")["admit"] is True
    assert miniapp.scan("scenic", user="grandpa", unit=TAIJI)[0] == "请入园 Welcome"
    assert entered(miniapp, "grandpa") == {"09:00": 1, "13:00": 1}
    assert miniapp.scan("scenic", user="grandpa", unit=TAIJI)[0] == "已入园 Already entered"

    # 16:05: carol missed her morning slot; an offline scan of 11:50 uploaded now still counts (its scan time)
    clock_to(miniapp, tomorrow, "16:05")
    assert miniapp.scan("scenic", user="carol", unit=TAIJI) == [
        "已过入园时间 Too late: 09:00-12:00",
        "太极洞 Taiji Cave",
    ]
    late = dict(app_pass=carol["pass"]["payload"], mode="offline", scanned_at=at(tomorrow, "11:50"))
    assert miniapp.scan("scenic", unit=TAIJI, **late) == []
    assert entered(miniapp, "carol") == {"09:00": 1}
    miniapp.grant_staff("carol", "bureau")
    live = miniapp.get("/bureau/live", user="carol", query={"day": tomorrow.isoformat()}).json()
    assert next(s for s in live["spots"] if s["spot"] == "taiji-cave")["admitted"] == 4


def test_a_reentry_is_good_the_rest_of_the_day(miniapp: MiniApp) -> None:
    tomorrow = seeded(miniapp) + dt.timedelta(days=1)
    paid_ticket(miniapp, "grandpa", f"jishan-bamboo.{tomorrow.isoformat()}.09")
    clock_to(miniapp, tomorrow, "09:30")
    assert miniapp.scan("scenic", user="grandpa", unit="spot:jishan-bamboo")[0] == "请入园 Welcome"
    clock_to(miniapp, tomorrow, "17:00")  # his slot is over: he went out for dinner and comes back
    assert miniapp.scan("scenic", user="grandpa", unit="spot:jishan-bamboo")[0] == "再次入园 Re-entry"


def test_a_ticket_never_charged_is_refused_at_the_gate(
    miniapp: MiniApp, monkeypatch: pytest.MonkeyPatch
) -> None:
    today = seeded(miniapp)
    miniapp.grant_staff("carol", "spot_staff", TAIJI)
    body = {"spot": "taiji-cave", "day": today.isoformat(), "start": "00:00", "end": "23:59", "capacity": 5}
    slot = miniapp.post("/staff/slots", user="carol", json=body).json()["id"]

    def down(*args: object) -> None:
        raise CapabilityFailed("the one-card service is unreachable")

    # the reservation stops after writing the ticket, before charging it
    monkeypatch.setattr(miniapp.platform.payment_ops, "charge", down)
    assert miniapp.post(f"/slots/{slot}/reserve", user="alice").status >= 500
    monkeypatch.undo()
    (ticket,) = miniapp.get("/tickets", user="alice").json()["tickets"]
    assert (ticket["price_fen"], ticket["payment_id"], ticket["status"]) == (4000, None, "booked")
    assert miniapp.scan("scenic", user="alice", unit=TAIJI) == ["未付款 Not paid", "太极洞 Taiji Cave"]
    assert entered(miniapp, "alice") == {"00:00": 0}

    # reserving again charges it; paid, it enters
    miniapp.platform.balances["alice"] = 50_000
    paid_ticket(miniapp, "alice", slot)
    assert miniapp.scan("scenic", user="alice", unit=TAIJI)[0] == "请入园 Welcome"


def test_a_partner_countys_ankang_code_is_told_to_show_the_ticket_pass(miniapp: MiniApp) -> None:
    seeded(miniapp)
    assert miniapp.scan("scenic", user=None, issuer=CHANGXING, unit=TAIJI) == [
        "请出示门票码 Show your ticket pass",
        "外地安康码 Partner county code",
    ]
    assert miniapp.scan("scenic", user=None, unit=TAIJI) == ["未购票 No ticket in 一码旅游"]
