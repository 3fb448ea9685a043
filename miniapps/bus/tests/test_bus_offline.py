"""The bus app's offline rides against the simulator: recorded from the terminal's upload, charged once by
settlement, and costing the rider what the same rides cost online, whether uploaded late, in any order or side by
side with the rider's other rides."""

from __future__ import annotations

import asyncio
import datetime as dt
import importlib.util
import json
import random
from collections.abc import Coroutine
from pathlib import Path
from typing import Any

import pytest
from bus_days import seeded_at_wednesday_10, to_wednesday_10
from yima_sdk.fares import FareSchedule, FareTable, Ride, Rider, price_rides
from yima_sdk.simulator import AsyncSimulator
from yima_sdk.testing import MiniApp

_spec = importlib.util.spec_from_file_location("bus_seed", Path(__file__).parents[1] / "seed.py")
assert _spec is not None and _spec.loader is not None
seed_module = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(seed_module)


def test_an_offline_ride_is_recorded_priced_and_not_charged_again(miniapp: MiniApp) -> None:
    month = to_wednesday_10(miniapp).strftime("%Y-%m")
    assert miniapp.get("/lines", user="alice").status == 200
    lines = miniapp.scan(
        "bus", user="alice", unit="line:k2", mode="offline", credential_type="ride_code", amount_fen=400
    )
    assert lines == ["k2路 ¥4.00"]
    (ride,) = miniapp.get("/rides", user="alice", query={"month": month}).json()["rides"]
    assert (ride["mode"], ride["fare_fen"], ride["settled_fen"]) == ("offline", 400, 400)
    # settlement charged the card (once), and the ride keeps that payment; the app charged nothing itself
    assert [(p["id"], p["amount_fen"]) for p in miniapp.payments] == [(ride["payment_id"], 400)]
    assert ride["payment_id"].startswith("ride_")


def test_a_disputed_offline_ride_is_refunded_once_from_settlements_charge(miniapp: MiniApp) -> None:
    """Alice changes from line 1 to line 2 offline: settlement took 2 + 2 yuan, the app gave 1 back (the
    transfer). She disputes the second ride; the fares staff refund it from settlement's charge: at most the
    1 yuan it cost her net, once, and her balance and statement show it once."""
    miniapp.switches.payment_confirmation = "auto"
    wednesday = to_wednesday_10(miniapp)
    month = wednesday.strftime("%Y-%m")
    assert miniapp.get("/me", user="alice").status == 200
    start = miniapp.platform.balance("alice")
    for line in ("1", "2"):
        lines = miniapp.scan(
            "bus",
            user="alice",
            unit=f"line:{line}",
            mode="offline",
            credential_type="ride_code",
            amount_fen=200,
        )
        miniapp.advance(minutes=30)
    assert lines == ["2路 ¥1.00", "换乘优惠 transfer -¥1.00"]
    assert miniapp.platform.balance("alice") == start - 300
    second = miniapp.get("/rides", user="alice", query={"month": month}).json()["rides"][1]
    assert (second["settled_fen"], second["returned_fen"], second["fare_fen"]) == (200, 100, 100)

    reason = {"reason": "I changed buses, was charged 2 yuan first"}
    assert miniapp.post(f"/rides/{second['id']}/dispute", user="alice", json=reason).status == 201
    miniapp.grant_staff("carol", "fares")
    path = f"/fares/disputes/{second['id']}/refund"
    too_much = miniapp.post(path, user="carol", json={"amount_fen": 200})
    assert (too_much.status, too_much.json()["code"]) == (400, "bus.bad_refund")
    refunded = miniapp.post(path, user="carol", json={"note": "checked the bus log"})
    assert refunded.json() == {"ride": second["id"], "status": "refunded", "refunded_fen": 100}
    again = miniapp.post(path, user="carol", json={})
    assert (again.status, again.json()["code"]) == (409, "bus.dispute_closed")
    assert miniapp.platform.balance("alice") == start - 200
    statement = miniapp.get("/statement", user="alice", query={"month": month}).json()
    assert (statement["paid_fen"], statement["refunded_fen"]) == (200, 100)
    settlement = next(p for p in miniapp.payments if p["id"] == second["payment_id"])
    assert settlement["refunded_fen"] == 200  # the transfer given back, then the dispute: all it took


def test_an_offline_ride_costs_the_rider_what_it_would_online(miniapp: MiniApp) -> None:
    """Settlement charges the terminal table's price (the terminal knows no rider); the app gives back what the
    rider's own price is below it (a concession, a transfer), once, and the statement says what was paid."""
    miniapp.switches.payment_confirmation = "auto"
    wednesday = to_wednesday_10(miniapp)
    month = wednesday.strftime("%Y-%m")
    for rider in ("alice", "grandpa"):
        assert miniapp.get("/me", user=rider).status == 200
    before = {rider: miniapp.platform.balance(rider) for rider in ("alice", "grandpa")}
    # Born 1948: free at 70 or more. Settlement took the K2's top stage, 4 yuan; all of it comes back.
    lines = miniapp.scan(
        "bus", user="grandpa", unit="line:k2", mode="offline", credential_type="ride_code", amount_fen=400
    )
    assert lines == ["k2路 ¥0.00", "70岁以上免费 aged 70+"]
    assert miniapp.platform.balance("grandpa") == before["grandpa"]
    (ride,) = miniapp.get("/rides", user="grandpa", query={"month": month}).json()["rides"]
    assert (ride["settled_fen"], ride["returned_fen"], ride["fare_fen"]) == (400, 400, 0)
    statement = miniapp.get("/statement", user="grandpa", query={"month": month}).json()
    assert (statement["paid_fen"], statement["concession_off_fen"]) == (0, 400)

    # Alice boards line 1 offline, and line 2 online 30 minutes later: the same 2 + 1 yuan as two online rides.
    miniapp.scan(
        "bus", user="alice", unit="line:1", mode="offline", credential_type="ride_code", amount_fen=200
    )
    miniapp.advance(minutes=30)
    assert miniapp.scan("bus", user="alice", unit="line:2") == ["2路 ¥1.00", "换乘优惠 transfer -¥1.00"]
    assert miniapp.platform.balance("alice") == before["alice"] - 300
    # given back: grandpa's 4 yuan, once; nothing of Alice's offline ride (it cost its table price)
    assert [p["refunded_fen"] for p in miniapp.payments if p.get("refunded_fen")] == [400]


def test_a_late_offline_ride_takes_the_transfer_and_cap_it_would_have_given(miniapp: MiniApp) -> None:
    """An offline ride uploaded after the rider's later rides were charged: the month still costs what it would
    have online (the later ride's missed transfer comes off the late one), never more than its table price."""
    miniapp.switches.payment_confirmation = "auto"
    wednesday = to_wednesday_10(miniapp)
    month = wednesday.strftime("%Y-%m")
    assert miniapp.get("/me", user="alice").status == 200
    start = miniapp.platform.balance("alice")
    miniapp.advance(minutes=30)
    # 10:30 online on line 2: no earlier ride known yet, the full 2 yuan.
    assert miniapp.scan("bus", user="alice", unit="line:2") == ["2路 ¥2.00"]
    # 10:00 on line 1, offline, uploaded now: online, 10:30 would have been the transfer (2 + 1 = 3 yuan).
    lines = miniapp.scan(
        "bus", user="alice", unit="line:1", mode="offline", credential_type="ride_code", amount_fen=200,
        scanned_at=wednesday.astimezone(dt.UTC),
    )  # fmt: skip
    assert lines == ["1路 ¥1.00", "按乘车时间重算 in ride order -¥1.00"]
    assert miniapp.platform.balance("alice") == start - 300
    statement = miniapp.get("/statement", user="alice", query={"month": month}).json()
    assert statement["paid_fen"] == 300

    # The daily cap (8 yuan): 2 + 1 so far; 2 + 2 + 2 more online reach 9, over the cap by 1, the last capped.
    for line in ("1", "1", "1"):
        miniapp.advance(minutes=61)
        miniapp.scan("bus", user="alice", unit=f"line:{line}")
    assert miniapp.platform.balance("alice") == start - 800
    # A 4-yuan K2 ride at 10:10, uploaded late: the day was capped already, so it costs nothing.
    lines = miniapp.scan(
        "bus", user="alice", unit="line:k2", mode="offline", credential_type="ride_code", amount_fen=400,
        scanned_at=(wednesday + dt.timedelta(minutes=10)).astimezone(dt.UTC),
    )  # fmt: skip
    assert lines[0] == "k2路 ¥0.00"
    assert miniapp.platform.balance("alice") == start - 800
    assert miniapp.get("/statement", user="alice", query={"month": month}).json()["paid_fen"] == 800


@pytest.mark.parametrize("seed", range(6))
def test_random_journeys_uploaded_in_any_order_cost_what_they_would_online(
    miniapp: MiniApp, seed: int
) -> None:
    """A day of boardings on lines 1 and 2 (transfers, and the daily cap with enough of them), ridden offline and
    uploaded in a random order: the rider pays in all exactly what the same rides cost online, in ride order (the
    fare engine pricing the whole day at once), whoever is riding (grandpa: free; alice: full fare)."""
    miniapp.switches.payment_confirmation = "auto"
    wednesday = to_wednesday_10(miniapp)
    rng = random.Random(seed)
    rider = ("alice", "grandpa")[seed % 2]
    assert miniapp.get("/me", user=rider).status == 200
    at, rides = wednesday, []
    for i in range(rng.randint(3, 7)):
        at += dt.timedelta(minutes=rng.choice((5, 20, 45, 70)))
        rides.append(Ride(ride_id=f"r{i}", at=at, line=rng.choice(("1", "2"))))
    table = FareTable.from_json(json.dumps(seed_module.TABLE).encode())
    born = dt.date(1948, 2, 1) if rider == "grandpa" else dt.date(1990, 5, 14)
    online = sum(p.fare_fen for p in price_rides(FareSchedule([table]), Rider(birth_date=born), rides))
    start = miniapp.platform.balance(rider)
    for ride in rng.sample(rides, len(rides)):
        miniapp.scan(
            "bus", user=rider, unit=f"line:{ride.line}", mode="offline", credential_type="ride_code",
            amount_fen=200, scanned_at=ride.at.astimezone(dt.UTC),
        )  # fmt: skip
    assert start - miniapp.platform.balance(rider) == online, [(r.at.time(), r.line) for r in rides]
    statement = miniapp.get("/statement", user=rider, query={"month": wednesday.strftime("%Y-%m")}).json()
    assert statement["paid_fen"] == online


@pytest.mark.parametrize("seed", range(4))
async def test_random_journeys_uploaded_all_at_once_cost_what_they_would_online(
    miniapp_folder: Path, seed: int
) -> None:
    """As above, but every ride of the day is delivered at once (the app's two workers take them as they come,
    in no set order): each ride still waits its turn, and the day costs exactly what it costs online."""
    async with AsyncSimulator(miniapp_folder) as sim:
        sim.switches.payment_confirmation = "auto"
        wednesday = await seeded_at_wednesday_10(sim)
        rng = random.Random(seed)
        rider = ("alice", "grandpa")[seed % 2]
        assert (await sim.request("GET", "/me", user=rider)).status == 200
        at, rides = wednesday, []
        for i in range(rng.randint(4, 7)):
            at += dt.timedelta(minutes=rng.choice((5, 20, 45, 70)))
            rides.append(Ride(ride_id=f"r{i}", at=at, line=rng.choice(("1", "2"))))
        table = FareTable.from_json(json.dumps(seed_module.TABLE).encode())
        born = dt.date(1948, 2, 1) if rider == "grandpa" else dt.date(1990, 5, 14)
        online = sum(p.fare_fen for p in price_rides(FareSchedule([table]), Rider(birth_date=born), rides))
        start = sim.platform.balance(rider)
        await asyncio.gather(*(
            sim.scan(
                "bus", user=rider, unit=f"line:{ride.line}", terminal_id=f"bus-{ride.ride_id}", mode="offline",
                credential_type="ride_code", amount_fen=200, scanned_at=ride.at.astimezone(dt.UTC),
            )
            for ride in rng.sample(rides, len(rides))
        ))  # fmt: skip
        assert start - sim.platform.balance(rider) == online, [(r.at.time(), r.line) for r in rides]
        month = wednesday.strftime("%Y-%m")
        statement = (await sim.request("GET", "/statement", user=rider, query={"month": month})).json()
        assert (statement["rides"], statement["paid_fen"]) == (len(rides), online)


@pytest.mark.parametrize("modes", [("offline", "offline"), ("offline", "online"), ("online", "online")])
async def test_one_riders_rides_arriving_at_once_take_turns_and_keep_the_transfer(
    miniapp_folder: Path, modes: tuple[str, str]
) -> None:
    """Two terminals deliver one rider's rides side by side (the app runs two workers, as in production): two
    offline uploads, an offline upload beside an online boarding, or two online boardings at once. The second ride
    is a transfer (line 2 after line 1): each ride is priced seeing the other, so the rider pays 2 + 1 yuan, as
    online one after the other, not 2 + 2. Three days of it: a race that timing avoided on one day shows on
    another."""
    async with AsyncSimulator(miniapp_folder) as sim:
        sim.switches.payment_confirmation = "auto"
        wednesday = await seeded_at_wednesday_10(sim)
        assert (await sim.request("GET", "/me", user="alice")).status == 200

        def board(line: str, mode: str, at: dt.datetime) -> Coroutine[Any, Any, list[str]]:
            at = at.astimezone(dt.UTC)
            if mode == "online":
                return sim.scan(
                    "bus", user="alice", unit=f"line:{line}", terminal_id=f"bus-{line}", scanned_at=at
                )
            return sim.scan(
                "bus", user="alice", unit=f"line:{line}", terminal_id=f"bus-{line}", mode="offline",
                credential_type="ride_code", amount_fen=200, scanned_at=at,
            )  # fmt: skip

        paid = []
        for day in range(3):
            now = wednesday + dt.timedelta(days=day)
            # offline boardings at 9:30 and 9:50, uploaded now; online ones at 9:59:30 and now, at 10:00
            at = {
                "offline": (now - dt.timedelta(minutes=30), now - dt.timedelta(minutes=10)),
                "online": (now - dt.timedelta(seconds=30), now),
            }
            before = sim.platform.balance("alice")
            await asyncio.gather(board("1", modes[0], at[modes[0]][0]), board("2", modes[1], at[modes[1]][1]))
            paid.append(before - sim.platform.balance("alice"))
            await sim.advance(days=1)
        assert paid == [300, 300, 300]
        months = sorted({(wednesday + dt.timedelta(days=day)).strftime("%Y-%m") for day in range(3)})
        statements = [
            (await sim.request("GET", "/statement", user="alice", query={"month": month})).json()
            for month in months
        ]
        total = {k: sum(s[k] for s in statements) for k in ("rides", "paid_fen", "pending_fen")}
        assert total == {"rides": 6, "paid_fen": 900, "pending_fen": 0}
        assert sum(s["transfer_off_fen"] + s["reordered_off_fen"] for s in statements) == 300
