"""The tourism app against the simulator: demo spots and slots, a spot's staff keeping a slot, reserving within
capacity with seniors' prices, cancelling with a refund, the gates (ticket pass, Ankang code online and offline,
re-entry, group tickets) with the bureau's live count and warning, route packages, and reviews."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from yima_sdk.codes import CredentialError
from yima_sdk.cron import COUNTY_TIME
from yima_sdk.terminal import Terminal
from yima_sdk.testing import MiniApp

TAIJI = "spot:taiji-cave"


def seeded(miniapp: MiniApp) -> str:
    """Run the app's seed job as `yima dev` does; today's date in county time."""
    miniapp.schedule_job("seed", key="yima-dev-seed")
    assert [run.ok for run in miniapp.advance(seconds=1) if run.name == "seed"] == [True]
    return dt.datetime.fromtimestamp(miniapp.now, COUNTY_TIME).date().isoformat()


def all_day_slot(miniapp: MiniApp, spot: str, day: str, capacity: int) -> str:
    """A spot's staff publishes a slot lasting the whole day (so the test passes at any hour)."""
    miniapp.grant_staff("carol", "spot_staff", f"spot:{spot}")
    body = {"spot": spot, "day": day, "start": "00:00", "end": "23:59", "capacity": capacity}
    r = miniapp.post("/staff/slots", user="carol", json=body)
    assert r.status == 201, r.json()
    return str(r.json()["id"])


def test_slots_capacity_prices_and_cancel_with_a_refund(miniapp: MiniApp) -> None:
    today = seeded(miniapp)
    miniapp.platform.set_consent("alice", "registered_in:341822", granted=False)  # she pays the full price
    tomorrow = (dt.date.fromisoformat(today) + dt.timedelta(days=1)).isoformat()
    spots = {s["id"]: s for s in miniapp.get("/spots").json()["spots"]}
    assert {"taiji-cave", "jishan-bamboo", "tianhuangping", "tianmu-lake"} <= set(spots)
    assert {s["county"] for s in spots.values()} >= {"guangde", "anji", "liyang", "yixing", "changxing"}
    slots = miniapp.get("/spots/taiji-cave/slots", query={"day": tomorrow}).json()["slots"]
    assert [(s["start"], s["left"]) for s in slots] == [("09:00", 300), ("13:00", 300)]

    body = {"spot": "taiji-cave", "day": tomorrow, "start": "17:00", "end": "19:00", "capacity": 3}
    refused = miniapp.post("/staff/slots", user="alice", json=body)
    assert (refused.status, refused.json()["code"]) == (403, "miniapp.staff_required")
    miniapp.grant_staff("alice", "spot_staff", "spot:jishan-bamboo")
    assert miniapp.post("/staff/slots", user="alice", json=body).json()["code"] == "tourism.other_spot"
    miniapp.grant_staff("alice", "spot_staff", TAIJI)
    slot = miniapp.post("/staff/slots", user="alice", json=body).json()["id"]

    ticket = miniapp.post(f"/slots/{slot}/reserve", user="alice")
    assert ticket.status == 201, ticket.json()
    t = ticket.json()
    assert (t["price_fen"], t["concession"], t["people"]) == (8000, None, 1)
    assert t["pass"]["payload"].startswith("YP1.") and t["payment_id"].startswith("pay_")
    again = miniapp.post(f"/slots/{slot}/reserve", user="alice")  # a retry: the same ticket, one charge
    assert (
        again.status == 200 and again.json()["payment_id"] == t["payment_id"] and len(miniapp.payments) == 1
    )
    free = miniapp.post(f"/slots/{slot}/reserve", user="grandpa").json()  # born 1948: 70 or more
    assert (free["price_fen"], free["concession"], free["payment_id"]) == (0, "senior_free", None)
    group = miniapp.post(f"/slots/{slot}/reserve", user="carol", json={"people": 2})
    assert group.json()["code"] == "tourism.full"  # 2 of 3 places taken, 1 left
    shrink = miniapp.put(f"/staff/slots/{slot}", user="alice", json={"capacity": 1})
    assert shrink.json()["code"] == "tourism.capacity_below_reservations"
    assert miniapp.put(f"/staff/slots/{slot}", user="alice", json={"capacity": 4}).status == 200
    assert (
        miniapp.post(f"/slots/{slot}/reserve", user="carol", json={"people": 2}).json()["price_fen"] == 16000
    )

    miniapp.confirm_payment(t["payment_id"])
    balance = miniapp.platform.balances["alice"]
    assert miniapp.delete(f"/tickets/{t['id']}", user="grandpa").status == 404  # not his
    assert miniapp.delete(f"/tickets/{t['id']}", user="alice").json() == {
        "status": "cancelled",
        "refunded_fen": 8000,
    }
    assert miniapp.platform.balances["alice"] == balance + 8000
    assert miniapp.counters[f"taken:{slot}"] == 3
    # the cancelled ticket's pass no longer opens a gate
    miniapp.grant_staff("carol", "gate_keeper", TAIJI)
    check = {"spot": "taiji-cave", "payload": t["pass"]["payload"], "check_id": "c1"}
    assert miniapp.post("/gate/check", user="carol", json=check).json()["admit"] is False


def test_gates_admit_once_reenter_groups_offline_and_the_bureau_sees_the_count(miniapp: MiniApp) -> None:
    today = seeded(miniapp)
    slot = all_day_slot(miniapp, "taiji-cave", today, 4)
    alice = miniapp.post(f"/slots/{slot}/reserve", user="alice").json()
    group = miniapp.post(f"/slots/{slot}/reserve", user="grandpa", json={"people": 3}).json()
    miniapp.grant_staff("carol", "gate_keeper", TAIJI)

    def check(payload: str, check_id: str, spot: str = "taiji-cave") -> dict:
        r = miniapp.post(
            "/gate/check", user="carol", json={"spot": spot, "payload": payload, "check_id": check_id}
        )
        assert r.status == 200, r.json()
        return dict(r.json())

    assert check(alice["pass"]["payload"], "1")["lines"][0] == "未付款 Not paid"
    miniapp.confirm_payment(alice["payment_id"])
    miniapp.grant_staff("carol", "gate_keeper", "spot:jishan-bamboo")
    assert (
        check(alice["pass"]["payload"], "2", spot="jishan-bamboo")["lines"][0]
        == "非本景区门票 Ticket of another spot"
    )
    first = check(alice["pass"]["payload"], "3")
    assert (first["admit"], first["people"], first["lines"][0]) == (True, 1, "请入园 Welcome")
    assert check(alice["pass"]["payload"], "3") == first  # the same check retried: the same answer, one entry
    assert (
        check(alice["pass"]["payload"], "4")["lines"][0] == "已入园 Already entered"
    )  # no re-entry at 太极洞
    # the gate terminal scans the Ankang code: it finds grandpa's group ticket and admits three
    assert miniapp.confirm_payment(group["payment_id"])["status"] == "failed"  # 240 元 over his balance
    assert miniapp.scan("scenic", user="grandpa", unit=TAIJI)[0] == "未付款 Not paid"
    miniapp.platform.balances["grandpa"] = 50_000  # he tops up his one-card and pays again
    group = miniapp.post(f"/slots/{slot}/reserve", user="grandpa", json={"people": 3}).json()
    miniapp.confirm_payment(group["payment_id"])
    assert miniapp.scan("scenic", user="grandpa", unit=TAIJI) == [
        "请入园 Welcome",
        "太极洞 Taiji Cave",
        "3 人 people",
    ]
    assert miniapp.scan("scenic", user="grandpa", unit=TAIJI)[0] == "已入园 Already entered"

    miniapp.grant_staff("alice", "bureau")
    live = miniapp.get("/bureau/live", user="alice").json()
    taiji = next(s for s in live["spots"] if s["spot"] == "taiji-cave")
    assert (taiji["admitted"], taiji["warning"]) == (4, False)  # 4 of 604 places of the day
    # 笄山竹海 re-admits the same day; an offline gate's scans settle later, exactly once
    small = all_day_slot(miniapp, "jishan-bamboo", today, 2)
    miniapp.platform.balances["alice"] += 10_000
    ticket = miniapp.post(f"/slots/{small}/reserve", user="alice").json()
    miniapp.confirm_payment(ticket["payment_id"])
    assert miniapp.scan("scenic", user="alice", unit="spot:jishan-bamboo", mode="offline") == []
    assert miniapp.scan("scenic", user="alice", unit="spot:jishan-bamboo")[0] == "再次入园 Re-entry"
    miniapp.post(f"/slots/{small}/reserve", user="carol")  # unpaid: not admitted, not counted
    assert miniapp.scan("scenic", user="carol", unit="spot:jishan-bamboo")[0] == "未付款 Not paid"
    jishan = next(
        s for s in miniapp.get("/bureau/live", user="alice").json()["spots"] if s["spot"] == "jishan-bamboo"
    )
    assert (jishan["admitted"], jishan["reserved"]) == (1, 2)
    assert miniapp.get("/bureau/live", user="grandpa").json()["code"] == "miniapp.staff_required"


def test_a_spot_at_75_percent_warns_the_bureau(miniapp: MiniApp) -> None:
    today = seeded(miniapp)
    miniapp.grant_staff("carol", "spot_staff", "spot:xianshan-lake")
    for slot in miniapp.get("/spots/xianshan-lake/slots", query={"day": today}).json()["slots"]:
        assert (
            miniapp.put(f"/staff/slots/{slot['id']}", user="carol", json={"status": "closed"}).status == 200
        )
    slot = all_day_slot(miniapp, "xianshan-lake", today, 4)
    for user, people in (("grandpa", 1), ("alice", 2)):
        t = miniapp.post(f"/slots/{slot}/reserve", user=user, json={"people": people}).json()
        if t["payment_id"]:
            miniapp.confirm_payment(t["payment_id"])
    miniapp.grant_staff("carol", "bureau")
    assert miniapp.scan("scenic", user="grandpa", unit="spot:xianshan-lake")[0] == "请入园 Welcome"
    assert "xianshan-lake" not in miniapp.get("/bureau/live", user="carol").json()["warnings"]
    assert miniapp.scan("scenic", user="alice", unit="spot:xianshan-lake")[2] == "2 人 people"
    assert "xianshan-lake" in miniapp.get("/bureau/live", user="carol").json()["warnings"]  # 3 of 4
    live = miniapp.get("/staff/spots/xianshan-lake/live", user="carol").json()
    assert (live["admitted"], live["capacity"], live["warning"]) == (3, 4, True)


def test_a_route_package_is_honoured_once_at_each_spot_and_visitors_review(miniapp: MiniApp) -> None:
    today = seeded(miniapp)
    routes = {p["id"]: p for p in miniapp.get("/packages").json()["packages"]}
    assert set(routes) == {"holiday", "folk", "delta-heart"}
    order = miniapp.post("/packages/holiday/buy", user="alice", json={"day": today})
    assert order.status == 201, order.json()
    o = order.json()
    assert (
        miniapp.post("/packages/holiday/buy", user="alice", json={"day": today}).json()["payment_id"]
        == o["payment_id"]
    )
    assert len(miniapp.payments) == 1 and o["price_fen"] == 19800
    miniapp.platform.balances["alice"] = 50_000
    miniapp.confirm_payment(o["payment_id"])

    assert miniapp.post("/spots/tianmu-lake/reviews", user="alice", json={"stars": 5}).status == 403
    for spot in ("taiji-cave", "tianmu-lake"):  # two counties' gates honour the one pass
        miniapp.grant_staff("carol", "gate_keeper", f"spot:{spot}")
        body = {"spot": spot, "payload": o["pass"]["payload"], "check_id": f"route-{spot}"}
        assert miniapp.post("/gate/check", user="carol", json=body).json()["admit"] is True
        body["check_id"] += "-again"
        assert (
            miniapp.post("/gate/check", user="carol", json=body).json()["lines"][0]
            == "已入园 Already entered"
        )
    miniapp.grant_staff("carol", "gate_keeper", "spot:jishan-bamboo")
    other = {"spot": "jishan-bamboo", "payload": o["pass"]["payload"], "check_id": "x"}
    assert miniapp.post("/gate/check", user="carol", json=other).json()["admit"] is False
    # Ankang code at 天荒坪 (Anji) finds the route pass
    assert miniapp.scan("scenic", user="alice", unit="spot:tianhuangping")[0] == "请入园 Welcome"
    # 天荒坪 lets visitors back in the same day, a route pass too; the pass is good for three days, but on the
    # next one it has had its visit there
    assert miniapp.scan("scenic", user="alice", unit="spot:tianhuangping")[0] == "再次入园 Re-entry"
    miniapp.advance(seconds=86_400)
    assert miniapp.scan("scenic", user="alice", unit="spot:tianhuangping") == [
        f"已于 {today} 入园 Visited on {today}",
        "天荒坪 Tianhuangping",
    ]

    assert (
        miniapp.post("/spots/tianmu-lake/reviews", user="alice", json={"stars": 4, "text": "湖很美"}).status
        == 201
    )
    assert miniapp.post("/spots/tianmu-lake/reviews", user="alice", json={"stars": 2}).status == 200  # edited
    assert (
        miniapp.post("/spots/tianmu-lake/reviews", user="alice", json={"stars": 9}).json()["code"]
        == "tourism.bad_review"
    )
    lake = next(s for s in miniapp.get("/spots").json()["spots"] if s["id"] == "tianmu-lake")
    assert (lake["reviews"], lake["rating"]) == (1, 2.0)
    assert miniapp.get("/spots/tianmu-lake/reviews").json()["reviews"][0]["stars"] == 2


def test_a_gate_terminal_scans_ticket_passes_online_and_offline(miniapp: MiniApp, tmp_path: Path) -> None:
    today = seeded(miniapp)
    slot = all_day_slot(miniapp, "shanjuan-cave", today, 10)
    miniapp.platform.balances["alice"] = 50_000
    group = miniapp.post(f"/slots/{slot}/reserve", user="alice", json={"people": 2}).json()
    miniapp.confirm_payment(group["payment_id"])
    payload = group["pass"]["payload"]

    # online: the scan event carries the pass; the app admits the group once (no re-entry at 善卷洞)
    gate = "spot:shanjuan-cave"
    assert miniapp.scan("scenic", unit=gate, app_pass=payload) == [
        "请入园 Welcome",
        "善卷洞 Shanjuan Cave",
        "2 人 people",
    ]
    assert miniapp.scan("scenic", unit=gate, app_pass=payload)[0] == "已入园 Already entered"
    assert (
        miniapp.scan("scenic", unit="spot:tianmu-lake", app_pass=payload)[0]
        == "非本景区门票 Ticket of another spot"
    )

    # offline: a terminal that trusts the simulator's trust list verifies the pass's signature by itself
    credentials = miniapp.platform.credentials
    terminal = Terminal(
        root_public_keys=credentials.root_public_keys,
        db_path=str(tmp_path / "gate.sqlite"),
        clock=lambda: miniapp.now,
        clock_source="ntp",
    )
    terminal.load_trust_list(credentials.trust_list_envelope)
    decision = terminal.scan(payload)
    assert decision.result == "accept" and decision.code is not None and decision.code.app_pass is not None
    assert decision.code.app_pass.d["people"] == 2 and decision.code.app_pass.s is None
    assert terminal.scan(payload[:-4] + "AAAA").reason == "credential.bad_signature"
    terminal.close()

    # a cancelled ticket's pass is revoked: the platform refuses it before the app is asked
    tomorrow = (dt.date.fromisoformat(today) + dt.timedelta(days=1)).isoformat()
    later = miniapp.post(f"/slots/shanjuan-cave.{tomorrow}.09/reserve", user="grandpa").json()
    assert miniapp.delete(f"/tickets/{later['id']}", user="grandpa").status == 200
    with pytest.raises(CredentialError) as refused:
        miniapp.scan("scenic", unit=gate, app_pass=later["pass"]["payload"])
    assert refused.value.code == "credential.revoked"


def test_local_residents_pay_half_at_guangdes_spots_only_when_they_consent(miniapp: MiniApp) -> None:
    today = seeded(miniapp)
    taiji = all_day_slot(miniapp, "taiji-cave", today, 10)
    tianmu = all_day_slot(miniapp, "tianmu-lake", today, 10)
    # alice is registered in Guangde and lets the app ask that (yes or no): half price at 太极洞
    ticket = miniapp.post(f"/slots/{taiji}/reserve", user="alice").json()
    assert (ticket["price_fen"], ticket["concession"]) == (4000, "local_resident")
    # ... but not at 天目湖 (Liyang's spot), where Guangde's locals pay the full price
    ticket = miniapp.post(f"/slots/{tianmu}/reserve", user="alice").json()
    assert (ticket["price_fen"], ticket["concession"]) == (9000, None)
    # carol consents too, but she is registered in Liyang: the full price
    ticket = miniapp.post(f"/slots/{taiji}/reserve", user="carol").json()
    assert (ticket["price_fen"], ticket["concession"]) == (8000, None)
    # grandpa is a local too, and 70 or more: free beats half
    ticket = miniapp.post(f"/slots/{taiji}/reserve", user="grandpa").json()
    assert (ticket["price_fen"], ticket["concession"]) == (0, "senior_free")
    # once she refuses the question, the full price (笄山竹海: 40 yuan)
    jishan = all_day_slot(miniapp, "jishan-bamboo", today, 10)
    miniapp.platform.set_consent("alice", "registered_in:341822", granted=False)
    ticket = miniapp.post(f"/slots/{jishan}/reserve", user="alice").json()
    assert (ticket["price_fen"], ticket["concession"]) == (4000, None)
