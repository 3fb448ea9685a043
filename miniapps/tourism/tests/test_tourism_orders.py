"""Route orders cancelled with a refund until a gate admits them, and the days a route is bought for or a slot
published on: today to 90 days ahead, anything else a clear 400 (never an overflow)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from yima_sdk.cron import COUNTY_TIME
from yima_sdk.testing import MiniApp


def seeded(miniapp: MiniApp) -> dt.date:
    miniapp.schedule_job("seed", key="yima-dev-seed")
    assert [run.ok for run in miniapp.advance(seconds=1) if run.name == "seed"] == [True]
    return dt.datetime.fromtimestamp(miniapp.now, COUNTY_TIME).date()


def buy(miniapp: MiniApp, user: str, day: dt.date, package: str = "holiday") -> dict[str, Any]:
    r = miniapp.post(f"/packages/{package}/buy", user=user, json={"day": day.isoformat()})
    assert r.status in (200, 201), r.json()
    return dict(r.json())


def order(miniapp: MiniApp, user: str, order_id: str) -> dict[str, Any]:
    return dict(next(o for o in miniapp.get("/tickets", user=user).json()["orders"] if o["id"] == order_id))


def test_a_route_order_is_cancelled_with_a_refund_until_a_gate_admits_it(miniapp: MiniApp) -> None:
    today = seeded(miniapp)
    miniapp.platform.balances["alice"] = 100_000
    paid = buy(miniapp, "alice", today + dt.timedelta(days=2))
    miniapp.confirm_payment(paid["payment_id"])
    assert miniapp.delete(f"/orders/{paid['id']}", user="grandpa").status == 404  # not his
    r = miniapp.delete(f"/orders/{paid['id']}", user="alice")
    assert (r.status, r.json()) == (200, {"status": "cancelled", "refunded_fen": 19800})
    assert miniapp.platform.balances["alice"] == 100_000
    assert miniapp.delete(f"/orders/{paid['id']}", user="alice").json()["code"] == "tourism.no_such_order"
    assert miniapp.platform.balances["alice"] == 100_000  # refunded once
    # its pass no longer opens a gate
    miniapp.grant_staff("carol", "gate_keeper", "spot:taiji-cave")
    check = {"spot": "taiji-cave", "payload": paid["pass"]["payload"], "check_id": "cancelled-route"}
    assert miniapp.post("/gate/check", user="carol", json=check).json()["admit"] is False

    # bought again for the same day: a new order number and pass, a new charge
    again = buy(miniapp, "alice", today + dt.timedelta(days=2))
    assert again["number"] != paid["number"] and again["payment_id"] != paid["payment_id"]
    # not yet confirmed when she cancels: the charge is withdrawn and can no longer be paid
    assert miniapp.delete(f"/orders/{again['id']}", user="alice").json()["refunded_fen"] == 0
    assert miniapp.confirm_payment(again["payment_id"])["status"] == "cancelled"
    assert miniapp.platform.balances["alice"] == 100_000

    # once a gate admitted the route, it is not cancelled
    used = buy(miniapp, "alice", today)
    miniapp.confirm_payment(used["payment_id"])
    assert miniapp.scan("scenic", user="alice", unit="spot:tianhuangping")[0] == "请入园 Welcome"
    r = miniapp.delete(f"/orders/{used['id']}", user="alice")
    assert (r.status, r.json()["code"]) == (409, "tourism.route_entered")
    assert order(miniapp, "alice", used["id"])["status"] == "booked"
    assert miniapp.platform.balances["alice"] == 100_000 - 19800


def test_days_outside_today_to_90_days_ahead_are_refused_with_400(miniapp: MiniApp) -> None:
    today = seeded(miniapp)
    for day in ("9999-12-31", (today - dt.timedelta(days=1)).isoformat(), str(today + dt.timedelta(days=91))):
        r = miniapp.post("/packages/holiday/buy", user="alice", json={"day": day})
        assert (r.status, r.json()["code"]) == (400, "tourism.bad_day"), (day, r.json())
    assert miniapp.post("/packages/holiday/buy", user="alice", json={"day": "not a day"}).status == 400
    assert buy(miniapp, "alice", today + dt.timedelta(days=90))["until"] == str(today + dt.timedelta(days=92))

    miniapp.grant_staff("carol", "spot_staff", "spot:taiji-cave")
    for day in ("9999-12-31", "2000-01-01", str(today + dt.timedelta(days=91))):
        body = {"spot": "taiji-cave", "day": day, "start": "17:00", "end": "19:00", "capacity": 10}
        r = miniapp.post("/staff/slots", user="carol", json=body)
        assert (r.status, r.json()["code"]) == (400, "tourism.bad_day"), (day, r.json())
    body = {"spot": "taiji-cave", "day": str(today + dt.timedelta(days=90)), "start": "17:00", "end": "19:00",
            "capacity": 10}  # fmt: skip
    slot = miniapp.post("/staff/slots", user="carol", json=body).json()["id"]
    assert miniapp.post(f"/slots/{slot}/reserve", user="alice").status == 201  # its pass can be signed
