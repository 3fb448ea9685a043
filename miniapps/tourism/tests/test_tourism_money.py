"""The tourism app's money paths against the simulator: a cancelled ticket's unconfirmed charge withdrawn (it can
no longer be paid), unpaid reservations released after the 15-minute payment window (and a payment confirmed in
time kept), a refund that failed finished exactly once by a retried cancel or the sweep, a slot's capacity never
below what is booked, and a closed slot's tickets cancelled, refunded and their visitors told."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from yima_sdk import CapabilityFailed
from yima_sdk.cron import COUNTY_TIME
from yima_sdk.testing import MiniApp

TAIJI = "spot:taiji-cave"


def seeded(miniapp: MiniApp) -> str:
    miniapp.schedule_job("seed", key="yima-dev-seed")
    assert [run.ok for run in miniapp.advance(seconds=1) if run.name == "seed"] == [True]
    return dt.datetime.fromtimestamp(miniapp.now, COUNTY_TIME).date().isoformat()


def tomorrow_slot(miniapp: MiniApp, capacity: int) -> str:
    """A slot of 太极洞 tomorrow (not started: its tickets can be cancelled), published by carol."""
    miniapp.grant_staff("carol", "spot_staff", TAIJI)
    day = (dt.datetime.fromtimestamp(miniapp.now, COUNTY_TIME).date() + dt.timedelta(days=1)).isoformat()
    body = {"spot": "taiji-cave", "day": day, "start": "17:00", "end": "19:00", "capacity": capacity}
    r = miniapp.post("/staff/slots", user="carol", json=body)
    assert r.status == 201, r.json()
    return str(r.json()["id"])


def reserve(miniapp: MiniApp, slot: str, user: str, people: int = 1) -> dict[str, Any]:
    r = miniapp.post(f"/slots/{slot}/reserve", user=user, json={"people": people})
    assert r.status == 201, r.json()
    return dict(r.json())


def ticket(miniapp: MiniApp, user: str, ticket_id: str) -> dict[str, Any]:
    return dict(next(t for t in miniapp.get("/tickets", user=user).json()["tickets"] if t["id"] == ticket_id))


def admitted_at_gate(miniapp: MiniApp, payload: str, check_id: str) -> bool:
    miniapp.grant_staff("grandpa", "gate_keeper", TAIJI)
    body = {"spot": "taiji-cave", "payload": payload, "check_id": check_id}
    return bool(miniapp.post("/gate/check", user="grandpa", json=body).json()["admit"])


def test_a_cancelled_ticket_can_no_longer_be_paid(miniapp: MiniApp) -> None:
    seeded(miniapp)
    miniapp.platform.set_consent("alice", "registered_in:341822", granted=False)
    slot = tomorrow_slot(miniapp, 5)
    t = reserve(miniapp, slot, "alice")
    balance = miniapp.platform.balances["alice"]
    r = miniapp.delete(f"/tickets/{t['id']}", user="alice")
    assert (r.status, r.json()) == (200, {"status": "cancelled", "refunded_fen": 0})
    # the confirmation sheet still on her phone: confirming it now charges nothing
    assert miniapp.confirm_payment(t["payment_id"])["status"] == "cancelled"
    assert miniapp.platform.balances["alice"] == balance
    assert miniapp.counters[f"taken:{slot}"] == 0
    # she reserves again: a new number, a new charge she can pay
    again = reserve(miniapp, slot, "alice")
    assert again["number"] != t["number"] and again["payment_id"] != t["payment_id"]
    assert miniapp.confirm_payment(again["payment_id"])["status"] == "succeeded"
    assert miniapp.platform.balances["alice"] == balance - 8000


def test_an_unpaid_reservation_gives_its_places_back_after_15_minutes(miniapp: MiniApp) -> None:
    seeded(miniapp)
    miniapp.platform.set_consent("alice", "registered_in:341822", granted=False)
    slot = tomorrow_slot(miniapp, 3)
    hoarded = reserve(miniapp, slot, "alice", people=2)  # a group she never pays for
    miniapp.platform.balances["carol"] = 20_000
    kept = reserve(miniapp, slot, "carol")  # carol pays within the window
    refused = miniapp.post(f"/slots/{slot}/reserve", user="grandpa")
    assert refused.json()["code"] == "tourism.full"
    miniapp.advance(minutes=10)
    miniapp.confirm_payment(kept["payment_id"])
    miniapp.advance(minutes=4)  # 14 minutes: still hers
    assert ticket(miniapp, "alice", hoarded["id"])["status"] == "booked"
    runs = [
        run for run in miniapp.advance(minutes=6) if run.name == "sweep"
    ]  # 20: the sweep has run since 15
    assert runs and all(run.ok for run in runs)
    assert ticket(miniapp, "alice", hoarded["id"])["status"] == "released"
    assert (ticket(miniapp, "carol", kept["id"])["status"], ticket(miniapp, "carol", kept["id"])["paid"]) == (
        "booked",
        True,
    )
    assert miniapp.counters[f"taken:{slot}"] == 1
    # too late: her confirmation charges nothing, her pass opens no gate, and the places are bookable again
    balance = miniapp.platform.balances["alice"]
    assert miniapp.confirm_payment(hoarded["payment_id"])["status"] == "cancelled"
    assert miniapp.platform.balances["alice"] == balance
    assert not admitted_at_gate(miniapp, hoarded["pass"]["payload"], "late")
    assert reserve(miniapp, slot, "grandpa")["concession"] == "senior_free"
    assert reserve(miniapp, slot, "alice")["number"] != hoarded["number"]  # hers again only as a new ticket


def test_a_declined_charge_asked_again_is_withdrawn_with_the_reservation(miniapp: MiniApp) -> None:
    seeded(miniapp)
    slot = tomorrow_slot(miniapp, 3)
    first = reserve(miniapp, slot, "alice")
    miniapp.confirm_payment(first["payment_id"], accept=False)
    again = miniapp.post(f"/slots/{slot}/reserve", user="alice").json()  # a new charge, the same window
    assert again["payment_id"] != first["payment_id"] and again["number"] == first["number"]
    miniapp.advance(minutes=20)
    assert ticket(miniapp, "alice", first["id"])["status"] == "released"
    assert miniapp.confirm_payment(again["payment_id"])["status"] == "cancelled"
    assert miniapp.counters[f"taken:{slot}"] == 0


def test_a_failed_refund_is_owed_and_paid_once_by_a_retry_or_the_sweep(
    miniapp: MiniApp, monkeypatch: pytest.MonkeyPatch
) -> None:
    seeded(miniapp)
    miniapp.platform.set_consent("alice", "registered_in:341822", granted=False)
    miniapp.platform.balances["alice"] = 50_000
    slot = tomorrow_slot(miniapp, 5)
    paid = [reserve(miniapp, slot, "alice")]
    miniapp.confirm_payment(paid[0]["payment_id"])
    refund = miniapp.platform.payment_ops.refund

    def down(op: Any) -> Any:
        raise CapabilityFailed("the one-card service is down")

    monkeypatch.setattr(miniapp.platform.payment_ops, "refund", down)
    r = miniapp.delete(f"/tickets/{paid[0]['id']}", user="alice")
    assert (r.status, r.json()) == (202, {"status": "cancelling", "refunded_fen": 0})
    assert miniapp.counters[f"taken:{slot}"] == 0  # the place is free at once
    assert not admitted_at_gate(miniapp, paid[0]["pass"]["payload"], "owed")
    assert miniapp.platform.balances["alice"] == 50_000 - 8000
    monkeypatch.setattr(miniapp.platform.payment_ops, "refund", refund)
    r = miniapp.delete(f"/tickets/{paid[0]['id']}", user="alice")  # retried: the refund owed is paid
    assert (r.status, r.json()) == (200, {"status": "cancelled", "refunded_fen": 8000})
    assert miniapp.delete(f"/tickets/{paid[0]['id']}", user="alice").status == 404
    assert miniapp.platform.balances["alice"] == 50_000

    # not retried: the sweep pays it within 5 minutes, once
    miniapp.grant_staff("carol", "spot_staff", "spot:tianmu-lake")
    body = {"spot": "tianmu-lake", "day": slot.split(".")[1], "start": "17:00", "end": "19:00", "capacity": 5}
    lake = miniapp.post("/staff/slots", user="carol", json=body).json()["id"]
    t = reserve(miniapp, lake, "alice")
    miniapp.confirm_payment(t["payment_id"])
    monkeypatch.setattr(miniapp.platform.payment_ops, "refund", down)
    assert miniapp.delete(f"/tickets/{t['id']}", user="alice").status == 202
    monkeypatch.setattr(miniapp.platform.payment_ops, "refund", refund)
    miniapp.advance(minutes=5)
    assert (
        ticket(miniapp, "alice", t["id"])["status"],
        ticket(miniapp, "alice", t["id"])["refunded_fen"],
    ) == (
        "cancelled",
        9000,
    )
    miniapp.advance(minutes=10)
    assert miniapp.platform.balances["alice"] == 50_000
    assert sum(p.get("refunded_fen", 0) for p in miniapp.payments) == 8000 + 9000


def test_capacity_never_goes_below_the_places_booked(miniapp: MiniApp) -> None:
    seeded(miniapp)
    slot = tomorrow_slot(miniapp, 4)
    reserve(miniapp, slot, "alice", people=2)
    shrink = miniapp.put(f"/staff/slots/{slot}", user="carol", json={"capacity": 1})
    assert (shrink.status, shrink.json()["code"]) == (409, "tourism.capacity_below_reservations")
    assert miniapp.put(f"/staff/slots/{slot}", user="carol", json={"capacity": 2}).status == 200
    full = miniapp.post(f"/slots/{slot}/reserve", user="carol")
    assert (full.status, full.json()["code"]) == (409, "tourism.full")  # the capacity the commit reads
    bad = miniapp.put(f"/staff/slots/{slot}", user="carol", json={"capacity": 0})
    assert (bad.status, bad.json()["code"]) == (400, "tourism.bad_slot")


def test_a_capacity_lowered_while_a_reservation_is_under_way_bounds_its_commit(
    miniapp: MiniApp, monkeypatch: pytest.MonkeyPatch
) -> None:
    seeded(miniapp)
    slot = tomorrow_slot(miniapp, 3)
    reserve(miniapp, slot, "grandpa")  # 1 of 3 places
    handle, lowered = miniapp.platform.handle, []

    async def staff_lowers_it_meanwhile(call: Any, capability: str, operation: str, *rest: Any) -> Any:
        # alice's reservation read the slot (3 places) and is pricing her ticket: carol lowers it to 1 now
        if (capability, operation) == ("user", "scope") and not lowered:
            lowered.append(await miniapp._async.request("PUT", f"/staff/slots/{slot}", user="carol",
                                                        json={"capacity": 1}))  # fmt: skip
        return await handle(call, capability, operation, *rest)

    monkeypatch.setattr(miniapp.platform, "handle", staff_lowers_it_meanwhile)
    late = miniapp.post(f"/slots/{slot}/reserve", user="alice")
    assert lowered[0].status == 200  # 1 place booked: 1 is allowed
    assert (late.status, late.json()["code"]) == (
        409,
        "tourism.full",
    )  # the capacity in force, not the one read
    assert miniapp.counters[f"taken:{slot}"] == 1


def test_closing_a_slot_cancels_refunds_and_tells_its_visitors(miniapp: MiniApp) -> None:
    seeded(miniapp)
    miniapp.platform.set_consent("alice", "registered_in:341822", granted=False)
    slot = tomorrow_slot(miniapp, 10)
    paid, pending, free = (
        reserve(miniapp, slot, "alice"),
        reserve(miniapp, slot, "carol"),
        reserve(miniapp, slot, "grandpa"),
    )
    miniapp.confirm_payment(paid["payment_id"])
    balances = dict(miniapp.platform.balances)
    r = miniapp.put(f"/staff/slots/{slot}", user="carol", json={"status": "closed"})
    assert r.status == 200, r.json()
    assert [run.ok for run in miniapp.advance(seconds=2) if run.name == "close_slot"] == [True]
    for user, t, refunded in (("alice", paid, 8000), ("carol", pending, 0), ("grandpa", free, 0)):
        mine = ticket(miniapp, user, t["id"])
        assert (mine["status"], mine["refunded_fen"]) == ("cancelled", refunded), mine
        assert not admitted_at_gate(miniapp, t["pass"]["payload"], f"closed-{user}")
        told = miniapp.inbox(user)
        assert len(told) == 1 and told[0]["title"] == "门票已取消 Ticket cancelled", told
        assert "太极洞" in told[0]["body"]
    assert "80.00" in miniapp.inbox("alice")[0]["body"]
    assert miniapp.platform.balances["alice"] == balances["alice"] + 8000
    assert miniapp.confirm_payment(pending["payment_id"])["status"] == "cancelled"
    assert miniapp.platform.balances["carol"] == balances["carol"]
    assert miniapp.counters[f"taken:{slot}"] == 0
    # opened again: bookable afresh
    assert miniapp.put(f"/staff/slots/{slot}", user="carol", json={"status": "open"}).status == 200
    assert reserve(miniapp, slot, "alice")["number"] > paid["number"]
