"""The medical visits app against the simulator: demo data, booking with its fee (waived at 65), cancelling
with a refund, a scheduler cancelling a session, check-in by scan, the doctor's queue and the e-prescription,
and the evening reminder."""

from __future__ import annotations

import datetime as dt

from yima_sdk.cron import COUNTY_TIME
from yima_sdk.testing import MiniApp

PEOPLE = "institution:guangde-people"


def seeded(miniapp: MiniApp) -> str:
    """Run the app's seed job as `yima dev` does; today's date in county time."""
    miniapp.schedule_job("seed", key="yima-dev-seed")
    assert [run.ok for run in miniapp.advance(seconds=1) if run.name == "seed"] == [True]
    return dt.datetime.fromtimestamp(miniapp.now, COUNTY_TIME).date().isoformat()


def day_after(day: str, n: int = 1) -> str:
    return (dt.date.fromisoformat(day) + dt.timedelta(days=n)).isoformat()


def test_book_pay_waive_at_65_and_cancel_with_a_refund(miniapp: MiniApp) -> None:
    today = seeded(miniapp)
    tomorrow = day_after(today)
    names = [i["name"] for i in miniapp.get("/institutions").json()["institutions"]]
    assert {"广德市人民医院", "广德市中医院", "桃州镇卫生院"} <= set(names)
    found = miniapp.get("/sessions", query={"department": "guangde-people.internal", "day": tomorrow}).json()
    assert {s["doctor"] for s in found["sessions"]} == {"dr-chen", "dr-zhou"}
    assert (
        miniapp.get("/sessions", query={"doctor": "dr-chen", "day": tomorrow}).json()["sessions"][0]["left"]
        == 20
    )
    assert miniapp.get("/sessions").json()["code"] == "medical.search_needs_a_filter"

    session = f"dr-chen.{tomorrow}.am"
    booked = miniapp.post(f"/sessions/{session}/book", user="alice")
    assert booked.status == 201, booked.json()
    booking = booked.json()
    assert (booking["number"], booking["fee_fen"], booking["waived"]) == (1, 1000, False)
    # a retry answers the same booking and the same payment: one slot, one charge
    again = miniapp.post(f"/sessions/{session}/book", user="alice")
    assert again.status == 200 and again.json()["payment_id"] == booking["payment_id"]
    assert len(miniapp.payments) == 1 and miniapp.counters[f"taken:{session}"] == 1
    paid = miniapp.confirm_payment(booking["payment_id"])
    assert paid["status"] == "succeeded"
    balance = miniapp.platform.balances["alice"]

    free = miniapp.post(f"/sessions/{session}/book", user="grandpa").json()  # born 1948: 65 or more
    assert (free["fee_fen"], free["waived"], free["payment_id"], free["number"]) == (0, True, None, 2)

    assert miniapp.delete(f"/bookings/{booking['id']}", user="grandpa").status == 404  # not his
    cancelled = miniapp.delete(f"/bookings/{booking['id']}", user="alice")
    assert cancelled.json() == {"status": "cancelled", "refunded_fen": 1000}
    assert miniapp.platform.balances["alice"] == balance + 1000
    assert miniapp.counters[f"taken:{session}"] == 1
    # booking again after a cancel: a new number (numbers are never reused), a new charge
    rebooked = miniapp.post(f"/sessions/{session}/book", user="alice").json()
    assert rebooked["number"] == 3 and rebooked["payment_id"] != booking["payment_id"]


def test_a_cancelled_bookings_unpaid_fee_can_no_longer_be_paid(miniapp: MiniApp) -> None:
    today = seeded(miniapp)
    session = f"dr-chen.{day_after(today)}.am"
    booking = miniapp.post(f"/sessions/{session}/book", user="alice").json()
    balance = miniapp.platform.balances["alice"]
    cancelled = miniapp.delete(f"/bookings/{booking['id']}", user="alice")
    assert cancelled.json() == {"status": "cancelled", "refunded_fen": 0}
    # the confirmation sheet was still open on her phone: confirming now takes nothing
    assert miniapp.confirm_payment(booking["payment_id"])["status"] == "cancelled"
    assert miniapp.platform.balances["alice"] == balance


def test_cancelling_closes_at_the_cut_off_before_the_session(miniapp: MiniApp) -> None:
    today = seeded(miniapp)
    tomorrow = day_after(today)
    session = f"dr-chen.{tomorrow}.am"  # 08:00 tomorrow, county time: residents cancel until 07:00
    alice = miniapp.post(f"/sessions/{session}/book", user="alice").json()
    carol = miniapp.post(f"/sessions/{session}/book", user="carol").json()
    assert miniapp.confirm_payment(alice["payment_id"])["status"] == "succeeded"
    balance = miniapp.platform.balances["alice"]

    def to(hour: int, minute: int, day: str = tomorrow) -> None:
        """Move the simulator's clock (and so each request's received_at) to that time of `day`."""
        at = dt.datetime.combine(dt.date.fromisoformat(day), dt.time(hour, minute), COUNTY_TIME)
        miniapp.advance(seconds=at.timestamp() - miniapp.now)

    to(6, 59)  # carol had not paid yet: cancelled, nothing to refund
    assert miniapp.delete(f"/bookings/{carol['id']}", user="carol").json() == {
        "status": "cancelled",
        "refunded_fen": 0,
    }
    to(7, 1)
    refused = miniapp.delete(f"/bookings/{alice['id']}", user="alice")
    assert (refused.status, refused.json()["code"]) == (409, "medical.past_cutoff")
    assert f"until {tomorrow} 07:00, 1 h before" in refused.json()["error"]
    # nothing changed: still booked, the slot still hers, no refund
    assert miniapp.get(f"/bookings/{alice['id']}", user="alice").json()["status"] == "booked"
    assert miniapp.counters[f"taken:{session}"] == 1
    assert miniapp.platform.balances["alice"] == balance

    # a session with its own cut-off: the day before (24 h)
    miniapp.grant_staff("grandpa", "scheduler", PEOPLE)
    day = day_after(today, 8)  # after the demo week
    body = {"doctor": "dr-zhou", "day": day, "half": "pm", "capacity": 5, "fee_fen": 0, "cancel_hours": 24}
    assert miniapp.post("/staff/sessions", user="grandpa", json={**body, "cancel_hours": 73}).status == 400
    late = miniapp.post("/staff/sessions", user="grandpa", json=body).json()
    booked = miniapp.post(f"/sessions/{late['id']}/book", user="alice").json()
    to(7, 2)  # days before the session: open
    assert miniapp.delete(f"/bookings/{booked['id']}", user="alice").status == 200
    booked = miniapp.post(f"/sessions/{late['id']}/book", user="alice").json()
    to(14, 2, day_after(day, -1))  # 23 h 58 min before
    refused = miniapp.delete(f"/bookings/{booked['id']}", user="alice")
    assert (refused.status, refused.json()["code"]) == (409, "medical.past_cutoff")
    assert f"until {day_after(day, -1)} 14:00, 24 h before" in refused.json()["error"]


def test_a_session_holds_its_capacity_and_its_scheduler_cancels_it(miniapp: MiniApp) -> None:
    today = seeded(miniapp)
    day = day_after(today, 8)  # after the demo week
    body = {"doctor": "dr-sun", "day": day, "half": "pm", "capacity": 2, "fee_fen": 300}
    refused = miniapp.post("/staff/sessions", user="alice", json={**body, "half": "am"})
    assert refused.status == 403 and refused.json()["code"] == "miniapp.staff_required"
    miniapp.grant_staff("alice", "scheduler", "institution:guangde-tcm")
    other = miniapp.post("/staff/sessions", user="alice", json={**body, "half": "am"})
    assert other.json()["code"] == "medical.other_institution"
    miniapp.grant_staff("alice", "scheduler", PEOPLE)
    assert miniapp.post("/staff/sessions", user="alice", json=body).status == 201
    session = f"dr-sun.{day}.pm"
    assert miniapp.post("/staff/sessions", user="alice", json=body).json()["code"] == "medical.session_exists"

    answers = [miniapp.post(f"/sessions/{session}/book", user=u) for u in ("alice", "grandpa", "carol")]
    assert [a.status for a in answers] == [201, 201, 409]
    assert answers[2].json()["code"] == "medical.full"
    shrink = miniapp.put(f"/staff/sessions/{session}", user="alice", json={"capacity": 1})
    assert shrink.json()["code"] == "medical.capacity_below_bookings"
    assert miniapp.put(f"/staff/sessions/{session}", user="alice", json={"capacity": 3}).status == 200
    assert miniapp.post(f"/sessions/{session}/book", user="carol").status == 201

    # the health authority sees the day's counts and fees per institution, nobody's name or id
    assert miniapp.get(f"/authority/day/{day}", user="alice").json()["code"] == "miniapp.staff_required"
    miniapp.grant_staff("grandpa", "authority")
    assert miniapp.get(f"/authority/day/{day}", user="grandpa").json() == {
        "day": day,
        "institutions": [{"institution": "guangde-people", "bookings": 3, "fees_fen": 600}],
    }
    miniapp.confirm_payment(answers[0].json()["payment_id"])
    done = miniapp.post(f"/staff/sessions/{session}/cancel", user="alice").json()
    assert done == {
        "status": "cancelled",
        "told": 3,
        "refunded_fen": 300,
    }  # grandpa's was free, carol's unpaid
    for user in ("alice", "grandpa", "carol"):
        assert "门诊停诊 Session cancelled" in [m["title"] for m in miniapp.inbox(user)]
    assert miniapp.get("/sessions", query={"doctor": "dr-sun", "day": day}).json()["sessions"] == []


def test_cancelling_a_session_tells_and_refunds_the_patient_already_called(miniapp: MiniApp) -> None:
    today = seeded(miniapp)
    session = f"dr-zhou.{today}.pm"
    alice = miniapp.post(f"/sessions/{session}/book", user="alice").json()
    assert miniapp.confirm_payment(alice["payment_id"])["status"] == "succeeded"
    balance = miniapp.platform.balances["alice"]
    miniapp.scan("clinic", user="alice", unit=PEOPLE)
    miniapp.grant_staff("carol", "doctor", PEOPLE)
    assert miniapp.post(f"/doctor/sessions/{session}/next", user="carol").json()["number"] == alice["number"]
    assert miniapp.get(f"/bookings/{alice['id']}", user="alice").json()["status"] == "called"

    miniapp.grant_staff("grandpa", "scheduler", PEOPLE)
    done = miniapp.post(f"/staff/sessions/{session}/cancel", user="grandpa").json()
    assert done == {"status": "cancelled", "told": 1, "refunded_fen": alice["fee_fen"]}
    assert miniapp.get(f"/bookings/{alice['id']}", user="alice").json()["status"] == "cancelled"
    assert miniapp.platform.balances["alice"] == balance + alice["fee_fen"]
    assert "门诊停诊 Session cancelled" in [m["title"] for m in miniapp.inbox("alice")]
    assert miniapp.get(f"/sessions/{session}/screen").json()["calling"] == []


def test_check_in_learns_the_codes_colour_only_under_consent(miniapp: MiniApp) -> None:
    """The scan event carries the code's colour only while carol grants `health_color`: without it her yellow
    code checks her in like any other (the terminal's own policy still shows the colour)."""
    today = seeded(miniapp)
    session = f"dr-zhou.{today}.pm"
    carol = miniapp.post(f"/sessions/{session}/book", user="carol").json()
    miniapp.platform.set_consent("carol", "health_color", True)
    assert miniapp.scan("clinic", user="carol", unit=PEOPLE)[:2] == [
        "发热门诊 Go to the fever clinic", "健康码 code yellow",
    ]  # fmt: skip
    assert miniapp.get(f"/bookings/{carol['id']}", user="carol").json()["status"] == "booked"
    miniapp.platform.set_consent("carol", "health_color", False)
    assert miniapp.scan("clinic", user="carol", unit=PEOPLE) == [
        "内科 Internal medicine", f"PM 序号 No. {carol['number']}", "前面 0 人 0 ahead",
    ]  # fmt: skip
    assert miniapp.get(f"/bookings/{carol['id']}", user="carol").json()["status"] == "waiting"


def test_check_in_queue_no_show_and_an_e_prescription(miniapp: MiniApp) -> None:
    today = seeded(miniapp)
    session = f"dr-zhou.{today}.pm"
    first = miniapp.post(f"/sessions/{session}/book", user="grandpa").json()
    second = miniapp.post(f"/sessions/{session}/book", user="alice").json()
    carol = miniapp.post(f"/sessions/{session}/book", user="carol").json()

    assert miniapp.scan("clinic", user="grandpa", unit=PEOPLE) == [
        "内科 Internal medicine", "PM 序号 No. 1", "前面 0 人 0 ahead",
    ]  # fmt: skip
    assert miniapp.scan("clinic", user="alice", unit=PEOPLE)[2] == "前面 1 人 1 ahead"
    # a yellow code goes to the fever clinic first; the booking is kept, not queued
    assert miniapp.scan("clinic", user="carol", unit=PEOPLE) == [
        "发热门诊 Go to the fever clinic", "健康码 code yellow", "预约保留 No. 3 kept",
    ]  # fmt: skip
    assert miniapp.get(f"/bookings/{carol['id']}", user="carol").json()["status"] == "booked"
    assert miniapp.get(f"/bookings/{second['id']}", user="alice").json()["ahead"] == 1
    # the page's list: her open bookings with their place, in one call; the clinic's screens, in one call
    listed = miniapp.get("/bookings", user="alice", query={"open": "1"}).json()["bookings"]
    assert [(b["id"], b["status"], b["ahead"]) for b in listed] == [(second["id"], "waiting", 1)]
    screens = miniapp.get("/screens", query={"institution": "guangde-people"}).json()["screens"]
    assert [(s["waiting"], s["calling"], s["next"]) for s in screens if s["session"] == session] == [
        (2, [], [1, 2])
    ]
    assert miniapp.get("/screens").json()["code"] == "medical.screens_need_an_institution"

    refused = miniapp.post(f"/doctor/sessions/{session}/next", user="carol")
    assert refused.json()["code"] == "miniapp.staff_required"
    miniapp.grant_staff("carol", "doctor", PEOPLE)
    called = miniapp.post(f"/doctor/sessions/{session}/next", user="carol").json()
    assert (called["number"], called["waiting"]) == (1, 1)
    shown = miniapp.get(f"/sessions/{session}/screen").json()
    assert (shown["calling"], shown["next"], shown["waiting"]) == ([1], [2], 1)
    assert miniapp.get(f"/bookings/{second['id']}", user="alice").json()["ahead"] == 0
    assert miniapp.post(f"/doctor/bookings/{first['id']}/no-show", user="carol").json() == {
        "status": "no_show"
    }
    assert miniapp.counters[f"taken:{session}"] == 2  # the slot is free again

    assert miniapp.post(f"/doctor/sessions/{session}/next", user="carol").json()["number"] == 2
    finished = miniapp.post(
        f"/doctor/bookings/{second['id']}/finish",
        user="carol",
        json={"items": [{"drug": "amoxicillin", "boxes": 2}]},
    ).json()
    assert finished["status"] == "done" and finished["prescription"]["payload"].startswith("YP1.")
    assert "电子处方 E-prescription" in [m["title"] for m in miniapp.inbox("alice")]
    # after the visit at the county hospital, back to her township centre for follow-up
    back = miniapp.post(f"/doctor/bookings/{second['id']}/refer", user="carol",
                        json={"department": "taozhou.general", "reason": "随访 follow-up of blood pressure"})  # fmt: skip
    assert (back.status, back.json()["direction"]) == (201, "back")
    assert "下转随访 Follow-up referral" in [m["title"] for m in miniapp.inbox("alice")]
    assert miniapp.post(f"/doctor/sessions/{session}/next", user="carol").json() == {
        "number": None,
        "waiting": 0,
    }


def test_walk_in_at_a_township_centre_and_no_booking_elsewhere(miniapp: MiniApp) -> None:
    seeded(miniapp)
    assert miniapp.get("/bookings", user="alice").json() == {"bookings": []}  # she has opened the app
    lines = miniapp.scan("clinic", user="alice", unit="institution:taozhou")
    assert lines[0] == "现场号 Walk-in No. 1" and lines[1] == "何平 He Ping"
    again = miniapp.scan("clinic", user="alice", unit="institution:taozhou")  # the same number, not a second
    assert again[1:] == ["PM 序号 No. 1", "前面 0 人 0 ahead"] or again[1:] == [
        "AM 序号 No. 1",
        "前面 0 人 0 ahead",
    ]
    # a resident who never opened the app is unknown to it: no walk-in number on their behalf
    assert miniapp.scan("clinic", user="grandpa", unit="institution:taozhou") == [
        "未预约 No booking in 一码就医"
    ]


def test_the_evening_reminder_reaches_tomorrows_patients_once(miniapp: MiniApp) -> None:
    today = seeded(miniapp)
    for offset in (1, 2):
        miniapp.post(f"/sessions/dr-wu.{day_after(today, offset)}.am/book", user="grandpa")
    runs = [run for run in miniapp.advance(days=1) if run.name == "remind"]
    assert [run.ok for run in runs] == [True]
    reminded = dt.datetime.fromtimestamp(runs[0].at, COUNTY_TIME).date() + dt.timedelta(days=1)
    titles = [m["body"] for m in miniapp.inbox("grandpa") if m["title"] == "明日就诊 Visit tomorrow"]
    assert len(titles) == 1 and titles[0].startswith(f"{reminded.isoformat()} 08:00")


def test_two_way_referral_books_a_held_back_slot_and_family_members(miniapp: MiniApp) -> None:
    today = seeded(miniapp)
    miniapp.get("/bookings", user="alice")
    # at the township centre: a walk-in, called by its doctor, referred up to the county hospital
    miniapp.scan("clinic", user="alice", unit="institution:taozhou")
    miniapp.grant_staff("carol", "doctor", "institution:taozhou")
    seen = miniapp.post(f"/doctor/sessions/dr-he.{today}.{_half(miniapp)}/next", user="carol").json()
    refused = miniapp.post(f"/doctor/bookings/{seen['booking']}/refer", user="carol",
                           json={"department": "taozhou.general", "reason": "x"})  # fmt: skip
    assert refused.json()["code"] == "medical.no_such_department"  # a referral goes to another institution
    up = miniapp.post(
        f"/doctor/bookings/{seen['booking']}/refer",
        user="carol",
        json={"department": "guangde-people.internal", "reason": "胸痛待查 chest pain, needs an ECG"},
    ).json()
    assert (up["direction"], up["status"], up["to_institution"]) == ("up", "open", "guangde-people")
    assert "转诊 Referral" in [m["title"] for m in miniapp.inbox("alice")]
    assert [r["id"] for r in miniapp.get("/referrals", user="alice").json()["referrals"]] == [up["id"]]

    # a session with one of its two slots held back for referrals
    miniapp.grant_staff("grandpa", "scheduler", PEOPLE)
    day = day_after(today, 8)
    body = {"doctor": "dr-chen", "day": day, "half": "am", "capacity": 2, "fee_fen": 0, "referral_reserve": 1}
    session = miniapp.post("/staff/sessions", user="grandpa", json=body).json()["id"]
    assert miniapp.post(f"/sessions/{session}/book", user="grandpa").status == 201
    assert miniapp.post(f"/sessions/{session}/book", user="carol").json()["code"] == "medical.full"
    with_referral = miniapp.post(f"/sessions/{session}/book", user="alice", json={"referral": up["id"]})
    assert with_referral.status == 201 and with_referral.json()["referral"] == up["id"]
    assert miniapp.get("/referrals", user="alice").json()["referrals"][0]["status"] == "used"
    other = miniapp.post(
        f"/sessions/dr-zhou.{day_after(today)}.am/book", user="alice", json={"referral": up["id"]}
    )
    assert other.json()["code"] == "medical.referral_not_for_this"

    # family: booking for a child, with the consent recorded
    assert (
        miniapp.post(
            "/family", user="alice", json={"name": "小明", "relation": "child", "consent": False}
        ).status
        == 400
    )
    child = miniapp.post(
        "/family", user="alice", json={"name": "小明", "relation": "child", "consent": True}
    ).json()
    sun = f"dr-sun.{day_after(today)}.am"
    own = miniapp.post(f"/sessions/{sun}/book", user="alice").json()
    theirs = miniapp.post(f"/sessions/{sun}/book", user="alice", json={"member": child["id"]}).json()
    assert theirs["member"] == child["id"] and theirs["id"] != own["id"] and theirs["number"] == 2
    assert miniapp.post(f"/sessions/{sun}/book", user="carol", json={"member": child["id"]}).json()[
        "code"
    ] == ("medical.no_such_member")


def _half(miniapp: MiniApp) -> str:
    return "am" if dt.datetime.fromtimestamp(miniapp.now, COUNTY_TIME).hour < 12 else "pm"


def test_a_resident_sees_the_prescriptions_a_pharmacy_can_still_fill(miniapp: MiniApp) -> None:
    today = seeded(miniapp)
    session = f"dr-zhou.{today}.pm"
    booking = miniapp.post(f"/sessions/{session}/book", user="alice").json()
    miniapp.scan("clinic", user="alice", unit=PEOPLE)
    miniapp.grant_staff("carol", "doctor", PEOPLE)
    miniapp.post(f"/doctor/sessions/{session}/next", user="carol")
    assert miniapp.get("/prescriptions", user="alice").json() == {"prescriptions": []}
    finished = miniapp.post(
        f"/doctor/bookings/{booking['id']}/finish",
        user="carol",
        json={"items": [{"drug": "amoxicillin", "boxes": 2}]},
    ).json()

    listed = miniapp.get("/prescriptions", user="alice").json()["prescriptions"]
    assert [(p["booking"], p["items"], p["payload"]) for p in listed] == [
        (booking["id"], [["amoxicillin", 2]], finished["prescription"]["payload"])
    ]
    assert miniapp.get("/prescriptions", user="grandpa").json() == {"prescriptions": []}  # not his
    miniapp.advance(seconds=3 * 86400 + 60)  # past its 3 days: no pharmacy fills it, the list drops it
    assert miniapp.get("/prescriptions", user="alice").json() == {"prescriptions": []}
