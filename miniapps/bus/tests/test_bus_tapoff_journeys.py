"""The fare property over random journeys with stops and tap-offs: a day of boardings on lines 1, 2 and the
staged K2, from random stops, some tapped off at a random stop and some not, costs the rider the same online
(each scan as it happens) and offline (each bus's records uploaded in its own order, the buses' uploads
interleaved at random), and exactly what the fare engine prices for those rides with their stops."""

from __future__ import annotations

import datetime as dt
import importlib.util
import json
import random
from pathlib import Path

import pytest
from bus_days import to_wednesday_10
from yima_sdk.fares import FareSchedule, FareTable, Ride, Rider, price_rides
from yima_sdk.testing import MiniApp

_spec = importlib.util.spec_from_file_location("bus_seed", Path(__file__).parents[1] / "seed.py")
assert _spec is not None and _spec.loader is not None
seed_module = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(seed_module)
TABLE = FareTable.from_json(json.dumps(seed_module.TABLE).encode())
BORN = {"alice": dt.date(1990, 5, 14), "grandpa": dt.date(1948, 2, 1)}


def journey(rng: random.Random, start: dt.datetime) -> list[tuple[Ride, dt.datetime | None]]:
    """Boardings through a day (transfers, the daily cap with enough of them), each with its tap-off time when
    the rider taps off (then `alight` is where), or None (then `alight` is None: the top stage)."""
    at, out = start, []
    for i in range(rng.randint(3, 7)):
        at += dt.timedelta(minutes=rng.choice((5, 20, 45, 70)))
        line = rng.choice(("1", "2", "k2", "k2"))
        stops = TABLE.lines[line].stops
        board, alight = rng.sample(range(len(stops)), 2)
        taps = rng.random() < 0.7
        ride = Ride(
            ride_id=f"r{i}", at=at, line=line, board=stops[board], alight=stops[alight] if taps else None
        )
        off_at = at + dt.timedelta(minutes=rng.randint(1, 4)) if taps else None
        out.append((ride, off_at))
        at = off_at or at
    return out


def scans(rides: list[tuple[Ride, dt.datetime | None]], mode: str) -> list[tuple[str, dict[str, object]]]:
    """Each ride's scans on its own bus (terminal): the boarding, then the tap-off."""
    out = []
    for ride, off_at in rides:
        common = {"unit": f"line:{ride.line}", "terminal_id": f"bus-{ride.ride_id}", "mode": mode}
        if mode == "offline":
            common["credential_type"] = "ride_code"
        board = {**common, "stop": ride.board, "scanned_at": ride.at.astimezone(dt.UTC)}
        if mode == "offline":  # the terminal's price: the top stage (Terminal.fare(line, board))
            board["amount_fen"] = (
                TABLE.lines[ride.line].flat_fen or TABLE.lines[ride.line].stages[-1].fare_fen
            )
        out.append((ride.ride_id, board))
        if off_at is not None:
            assert off_at is not None
            out.append((ride.ride_id, {**common, "stop": ride.alight, "tap": "off",
                                       "scanned_at": off_at.astimezone(dt.UTC)}))  # fmt: skip
    return out


def interleaved(rng: random.Random, items: list[tuple[str, dict[str, object]]]) -> list[dict[str, object]]:
    """Each bus's scans in its own order, the buses' uploads mixed at random."""
    queues: dict[str, list[dict[str, object]]] = {}
    for bus, scan in items:
        queues.setdefault(bus, []).append(scan)
    out = []
    while queues:
        bus = rng.choice(sorted(queues))
        out.append(queues[bus].pop(0))
        if not queues[bus]:
            del queues[bus]
    return out


@pytest.mark.parametrize("seed", range(8))
def test_random_journeys_with_stops_and_tap_offs_cost_the_same_online_and_offline(
    miniapp: MiniApp, seed: int
) -> None:
    miniapp.switches.payment_confirmation = "auto"
    wednesday = to_wednesday_10(miniapp)
    rng = random.Random(seed)
    rider = ("alice", "alice", "alice", "grandpa")[seed % 4]
    assert miniapp.get("/me", user=rider).status == 200
    paid = {}
    for mode, day in (
        ("online", 0),
        ("offline", 7),
    ):  # the same journey, a week apart (same weekday and hours)
        rng_day = random.Random(seed)
        rides = journey(rng_day, wednesday - dt.timedelta(hours=1) + dt.timedelta(days=day))
        engine = sum(p.fare_fen for p in price_rides(FareSchedule([TABLE]), Rider(birth_date=BORN[rider]),
                                                     [ride for ride, _ in rides]))  # fmt: skip
        order = (
            [scan for _, scan in scans(rides, mode)]
            if mode == "online"
            else interleaved(rng, scans(rides, mode))
        )
        target = max(s["scanned_at"] for s in order).timestamp() + 60  # type: ignore[attr-defined]
        miniapp.advance(seconds=max(0.0, target - miniapp.now))
        start = miniapp.platform.balance(rider)
        for scan in order:
            miniapp.scan("bus", user=rider, **scan)  # type: ignore[arg-type]
        paid[mode] = start - miniapp.platform.balance(rider)
        assert paid[mode] == engine, (mode, [(r.at.time(), r.line, r.board, r.alight) for r, _ in rides])
    assert paid["online"] == paid["offline"]
