"""The tourism app's money paths through the real core, on its own `yima dev` (the fixture of
test_real_tourism.py): a cancelled ticket's charge refused when the visitor confirms it afterwards, cancels racing
confirmations (never money kept for a cancelled ticket), a route order cancelled with its refund on the one-card,
a closed slot's paid ticket refunded with a message in the visitor's inbox, a slot's capacity lowered while
visitors reserve it (never more booked than the capacity in force), and a day beyond the calendar refused."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest

from tests.e2e._real import eventually, verified_resident
from tests.e2e.test_real_tourism import API, Dev, paying_resident, running_dev, staff

SPOTS = {  # the seeded spots and their prices in fen
    "taiji-cave": 8000,
    "jishan-bamboo": 4000,
    "tianhuangping": 6000,
    "tianmu-lake": 9000,
    "shanjuan-cave": 7000,
    "xianshan-lake": 5000,
}


@pytest.fixture(scope="module")
def dev() -> Iterator[Dev]:
    yield from running_dev()


def day_after(dev: Dev, days: int) -> str:
    return (dt.date.fromisoformat(dev.today) + dt.timedelta(days=days)).isoformat()


def balance(resident: httpx.Client) -> int:
    r = resident.get("/v1/me/onecard")
    assert r.status_code == 200, r.text
    return int(r.json()["balance_fen"])


def reserve(visitor: httpx.Client, slot: str) -> dict[str, Any]:
    r = visitor.post(f"{API}/slots/{slot}/reserve")
    assert r.status_code == 201, r.text
    return dict(r.json())


def confirm(resident: httpx.Client, payment_id: str) -> httpx.Response:
    return resident.post(f"/v1/me/payments/{payment_id.removeprefix('pay_')}/confirm")


def mine(visitor: httpx.Client, ticket_id: str) -> dict[str, Any]:
    return dict(next(t for t in visitor.get(f"{API}/tickets").json()["tickets"] if t["id"] == ticket_id))


def test_a_cancelled_tickets_charge_is_refused_when_confirmed_afterwards(dev: Dev) -> None:
    resident = paying_resident(dev, 9000)
    start = balance(resident)
    ticket = reserve(resident, f"tianmu-lake.{day_after(dev, 1)}.13")
    r = resident.delete(f"{API}/tickets/{ticket['id']}")
    assert (r.status_code, r.json()) == (200, {"status": "cancelled", "refunded_fen": 0}), r.text
    late = confirm(resident, ticket["payment_id"])
    assert (late.status_code, late.json()["code"]) == (409, "payment.already_decided"), late.text
    assert balance(resident) == start


def test_cancels_racing_confirmations_never_keep_money_for_a_cancelled_ticket(dev: Dev) -> None:
    resident = paying_resident(dev, sum(SPOTS.values()))
    start = balance(resident)
    tickets = [reserve(resident, f"{spot}.{day_after(dev, 2)}.09") for spot in SPOTS]
    # the visitor taps "pay" on the phone while a second device of hers cancels, for every ticket at once
    calls = [("confirm", t) for t in tickets] + [("cancel", t) for t in tickets]
    with ThreadPoolExecutor(len(calls)) as pool:
        answers = list(
            pool.map(
                lambda call: (
                    confirm(resident, call[1]["payment_id"])
                    if call[0] == "confirm"
                    else resident.delete(f"{API}/tickets/{call[1]['id']}")
                ),
                calls,
            )
        )
    confirmed, cancelled = answers[: len(tickets)], answers[len(tickets) :]
    for t, paid, cancel in zip(tickets, confirmed, cancelled, strict=True):
        assert cancel.status_code == 200 and cancel.json()["status"] == "cancelled", cancel.text
        if paid.status_code == 200:  # she paid first: refunded in full
            assert paid.json()["status"] == "succeeded" and cancel.json()["refunded_fen"] == t["price_fen"]
        else:  # the cancel came first: her confirmation charged nothing
            assert (paid.status_code, paid.json()["code"]) == (409, "payment.already_decided"), paid.text
            assert cancel.json()["refunded_fen"] == 0
    assert balance(resident) == start


def test_a_route_order_is_cancelled_with_its_refund_on_the_one_card(dev: Dev) -> None:
    visitor = paying_resident(dev, 13800)
    start = balance(visitor)
    r = visitor.post(f"{API}/packages/folk/buy", json={"day": day_after(dev, 3)})
    assert r.status_code == 201, r.text
    order = r.json()
    assert confirm(visitor, order["payment_id"]).status_code == 200
    assert balance(visitor) == start - 13800
    r = visitor.delete(f"{API}/orders/{order['id']}")
    assert (r.status_code, r.json()) == (200, {"status": "cancelled", "refunded_fen": 13800}), r.text
    assert balance(visitor) == start
    again = visitor.delete(f"{API}/orders/{order['id']}")
    assert (again.status_code, again.json()["code"]) == (404, "tourism.no_such_order"), again.text
    assert balance(visitor) == start


def test_closing_a_slot_refunds_its_paid_ticket_and_tells_the_visitor(dev: Dev) -> None:
    visitor = paying_resident(dev, 6000)
    start = balance(visitor)
    slot = f"tianhuangping.{day_after(dev, 4)}.13"
    ticket = reserve(visitor, slot)
    assert confirm(visitor, ticket["payment_id"]).status_code == 200
    keeper = staff(dev, "spot_staff", "spot:tianhuangping")
    r = keeper.put(f"{API}/staff/slots/{slot}", json={"status": "closed"})
    assert r.status_code == 200, r.text
    eventually(lambda: mine(visitor, ticket["id"])["status"] == "cancelled", limit_s=30)
    assert mine(visitor, ticket["id"])["refunded_fen"] == 6000
    assert balance(visitor) == start
    told = [m for m in visitor.get("/v1/me/inbox").json() if m["title"] == "门票已取消 Ticket cancelled"]
    assert told and "天荒坪" in told[0]["body"] and "60.00" in told[0]["body"], told
    refused = visitor.post(f"{API}/slots/{slot}/reserve")
    assert (refused.status_code, refused.json()["code"]) == (404, "tourism.no_such_slot")


def test_lowering_a_capacity_while_visitors_reserve_never_leaves_more_booked_than_places(dev: Dev) -> None:
    keeper = staff(dev, "spot_staff", "spot:shanjuan-cave")
    day = day_after(dev, 5)
    for round_ in range(3):
        body = {"spot": "shanjuan-cave", "day": day, "start": f"18:0{round_}", "end": "19:00", "capacity": 8}
        r = keeper.post(f"{API}/staff/slots", json=body)
        assert r.status_code == 201, r.text
        slot = r.json()["id"]
        visitors = [verified_resident(dev.server) for _ in range(8)]

        def act(who: httpx.Client | None, slot: str = slot) -> httpx.Response:
            if who is None:
                return keeper.put(f"{API}/staff/slots/{slot}", json={"capacity": 2})
            return who.post(f"{API}/slots/{slot}/reserve")

        everyone: list[httpx.Client | None] = [*visitors[:4], None, *visitors[4:]]
        with ThreadPoolExecutor(len(everyone)) as pool:
            answers = list(pool.map(act, everyone))
        shrink = answers.pop(4)
        booked = sum(a.status_code == 201 for a in answers)
        assert all(a.status_code in (201, 409) for a in answers), [a.text for a in answers]
        left = next(
            s
            for s in keeper.get(f"{API}/spots/shanjuan-cave/slots?day={day}").json()["slots"]
            if s["id"] == slot
        )
        if shrink.status_code == 200:
            assert left["capacity"] == 2 and booked <= 2, (booked, shrink.text)
        else:
            assert shrink.json()["code"] in ("tourism.capacity_below_reservations", "tourism.changed"), (
                shrink.text
            )
            assert left["capacity"] == 8
        assert left["left"] == left["capacity"] - booked, (
            left,
            booked,
        )  # the counter agrees with the tickets


def test_a_day_beyond_the_calendar_is_refused_with_a_stable_code(dev: Dev) -> None:
    visitor = verified_resident(dev.server)
    for day in ("9999-12-31", day_after(dev, 91)):
        r = visitor.post(f"{API}/packages/holiday/buy", json={"day": day})
        assert (r.status_code, r.json()["code"]) == (400, "tourism.bad_day"), r.text
