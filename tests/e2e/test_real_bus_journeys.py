"""Online and offline give the same fare for the same ride, through the real core (`yima dev` with the bus app):
a property test over random journeys, seeded (`BUS_JOURNEY_SEED` replays one; the seed is printed, so a failure
shows it).

Each journey is ridden by twins: two residents with the same birth date, the same consent and the same staff
grant. One shows the Ankang code to real bus terminals online (the sandboxed app prices the boarding and asks the
one-card, the rider confirms); the other shows offline ride codes (signed by a certified phone key) to terminals on
the terminal SDK, which price them from the fare tables they synced, and upload them after each step of the
journey (settlement re-prices and charges the table's fare, the app gives back what the rider's own price is
below it). Both boardings of a step happen at the same instant: the offline terminal's clock is read once and the
online scan reports that instant, which is now by the server's clock (well inside the clock tolerance), so
nothing is back-dated.

The real core places rides at its own time only: an online scan is decided now, and an offline ride code is
settled only within its device certificate, which the one-card issues now (scans before it are `not_yet_valid`).
So the journey lasts about a minute and the fare tables are shaped to it, as the fares staff publish them through
the gateway: a transfer window of one minute (boardings 20-50 s apart transfer, 70 s apart do not), peak windows on
the minutes the journey crosses (on today's weekday or not), a new version taking effect between two boardings,
small daily and monthly caps, a concession grant expiring between two boardings, riders at the edges of the age
bands. Terminals name their stop; after some boardings (most of the staged K2's) the twins tap off at a random stop
of the line (下车刷卡), and the app gives back what the ride costs less by stops travelled.

With libfaketime (.ci/run installs it), `yima dev` runs on a clock moved to two minutes before a county month
ends (its whole process tree; the test's terminals learn the server's time as they sync their clocks, as
test_real_bus_caps_days.py does), and the journey crosses midnight into the new month between its last two steps:
a new day's and month's caps, transfers across midnight, ages on the new date. Without it the journey runs on the
real clock, within one day.

What it proves: for every ride the twins' rides agree (version, base, peak, concession, transfer, cap, fare, stops,
what the tap-off gave back; no re-ordering share) and both agree with `yima_sdk.fares.price_rides` run here on the
tables the staff published, with the stops (a ride tapped off costs its fare less what the tap-off gave back);
the online fares asked of the one-card, and the offline terminal's ask and settlement's charge, are what the
engine says; each twin's one-card balance drops by the journey's total, and their statements agree."""

from __future__ import annotations

import base64
import datetime as dt
import os
import random
import secrets
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import msgspec
import pytest
from yima_sdk.fares import Eligibility, FareSchedule, FareTable, Ride, Rider, price_rides, settlement_fare
from yima_sdk.holder import Holder
from yima_sdk.terminal import Terminal

from server.seed import DEMO_OPERATOR_PHONE
from tests.e2e._bus import (
    API,
    APP,
    COUNTY_TIME,
    Dev,
    HeldClock,
    balance,
    confirm_all,
    offline_terminal,
    online_terminal,
    riders_with_cards,
)
from tests.e2e._real import (
    eventually,
    private_folder,
    real_server,
    server_env,
    sign_in,
    verified_resident,
)
from tests.e2e.test_real_bus import ride_codes_holder
from tests.e2e.test_real_bus_caps_days import LIBFAKETIME, server_now

LINES = ("1", "2", "k2")
STEPS = (0, 20, 40, 70)
"""Seconds from the journey's start to each step: gaps of 20 to 70 s, none within 10 s of the 60 s window."""
LEAD_S = 150
"""On a moved clock, `yima dev` starts this long before the month ends: it starts, the riders are set up, then the
journey begins 55 s before midnight (between its last two steps)."""
COMPARED = ("line", "table_version", "base_fen", "peak_fen", "concession", "concession_off_fen", "transfer",
            "transfer_off_fen", "cap_off_fen", "fare_fen", "reordered_off_fen")  # fmt: skip


@pytest.fixture(scope="module")
def dev() -> Iterator[Dev]:
    """`yima dev`; with libfaketime, on a clock moved to `LEAD_S` before the end of a month, county time."""
    with private_folder() as folder:
        moved: dict[str, str] = {}
        month_ends = None
        if LIBFAKETIME.exists():
            soon = dt.datetime.now(COUNTY_TIME) + dt.timedelta(seconds=LEAD_S + 60)  # a month ending ahead
            first = soon.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
            month_ends = (first + dt.timedelta(days=32)).replace(day=1).timestamp()
            moved = {"LD_PRELOAD": str(LIBFAKETIME), "FAKETIME": f"+{int(month_ends - LEAD_S - time.time())}"}
        env = server_env("", folder / "data", redis=False, YIMA_DEV_FIRST_PARTY="1", **moved)
        with real_server("dev", env=env) as server:
            watcher = verified_resident(server)
            eventually(lambda: watcher.get(f"{API}/lines").status_code == 200, limit_s=90)  # seeded
            offset = server_now(server) - time.time()
            yield Dev(server, sign_in(server, DEMO_OPERATOR_PHONE), folder, offset, month_ends)


def county_clock(at: float) -> str:
    return dt.datetime.fromtimestamp(at, COUNTY_TIME).strftime("%H:%M")


def random_table(rng: random.Random, base: dict[str, Any], version: int, start: float, ticks: list[float]) -> dict[str, Any]:  # fmt: skip
    """A version in force from `start`: random fares, caps, concessions and a peak window on some of the minutes
    the steps fall in (on today's weekday or another day)."""
    table = dict(base, version=version, effective_from=dt.datetime.fromtimestamp(start, dt.UTC).isoformat())
    low = rng.choice((100, 150, 200))
    table["lines"] = {
        "1": base["lines"]["1"] | {"flat_fen": rng.choice((100, 150, 200, 250, 300))},
        "2": base["lines"]["2"] | {"flat_fen": rng.choice((100, 200, 300))},
        "k2": base["lines"]["k2"] | {"stages": [{"up_to_stops": 2, "fare_fen": low},
                                                 {"up_to_stops": 5, "fare_fen": low + rng.choice((50, 200))}]},
    }  # fmt: skip
    table["concessions"] = base["concessions"] | {
        "student": rng.choice((50, 80)),
        "senior_60": rng.choice((0, 50)),
    }
    table["transfer"] = {"window_min": 1, "off_fen": rng.choice((50, 100, 150))}
    table["daily_cap_fen"] = rng.choice((None, 450, 700, 1200))
    table["monthly_cap_fen"] = rng.choice((None, 550, 15000))
    table["peak"] = []
    first, last = sorted(rng.sample(range(len(ticks)), 2))
    begin, end = ticks[first] // 60 * 60, ticks[last] // 60 * 60 + 60
    today = dt.datetime.fromtimestamp(ticks[first], COUNTY_TIME).isoweekday()
    if rng.random() < 0.8 and county_clock(begin) <= county_clock(end - 60):  # not across county midnight
        days = [d for d in range(1, 8) if d != today or rng.random() < 0.8]
        table["peak"] = [{"start": county_clock(begin), "end": county_clock(end) if county_clock(end) != "00:00" else "24:00",
                          "weekdays": days, "surcharge_fen": rng.choice((0, 50, 100)),
                          "suspends": rng.sample(["senior_60", "student", "senior_70"], rng.randint(0, 2))}]  # fmt: skip
    return table


@dataclass
class Twins:
    born: dt.date
    consents: bool
    grant: tuple[str, float] | None
    online: httpx.Client
    offline: httpx.Client
    holder: Holder
    boardings: list[Ride] = field(default_factory=list)
    """Each boarding, in order: its instant, line, stop, and where the rider tapped off (None: did not)."""
    asked: list[int] = field(default_factory=list)
    """What the offline terminal asked for each boarding."""

    def rider(self) -> Rider:
        grants = () if self.grant is None else (
            Eligibility(category=self.grant[0], expires_at=dt.datetime.fromtimestamp(self.grant[1], dt.UTC)),)  # fmt: skip
        return Rider(birth_date=self.born if self.consents else None, eligibilities=grants)


def births(rng: random.Random, today: dt.date) -> dt.date:
    """An adult, a senior of each band, or one at a band's edge today (60 today, 70 tomorrow)."""

    def aged(years: int, days: int = 0) -> dt.date:
        day = today + dt.timedelta(days=days)
        try:
            return day.replace(year=day.year - years)
        except ValueError:  # 29 February
            return (day - dt.timedelta(days=1)).replace(year=day.year - years)

    return rng.choice((dt.date(1990, 3, 1), aged(65), aged(75), aged(60), aged(70, days=1)))


def test_random_journeys_cost_the_same_online_and_offline(dev: Dev, tmp_path: Path) -> None:
    seed = int(os.environ.get("BUS_JOURNEY_SEED") or secrets.randbits(32))
    print(f"BUS_JOURNEY_SEED={seed}")  # shown with a failure: run again with it to replay the journeys
    rng = random.Random(seed)
    fares, concessions = dev.staff("fares"), dev.staff("concessions")
    pairs = twins(dev, rng)
    roots = {kid: base64.urlsafe_b64decode(k + "==")
             for kid, k in fares.get("/v1/trust-list/info").json()["root_public_keys"].items()}  # fmt: skip
    clock = HeldClock()
    online = {line: online_terminal(dev, line) for line in LINES}
    offline = {line: offline_terminal(dev, line, roots, tmp_path / f"{line}.sqlite", clock) for line in LINES}
    try:
        start = dev.now() + 6
        if dev.month_ends is not None:  # midnight, the month's end, between the last two steps
            start = max(start, dev.month_ends - 55)
        # each step 4 s or more from a minute's start, so a peak window holds all of a step's boardings or none
        while any(abs((start + step) % 60 - 30) > 26 for step in STEPS):
            start += 1
        ticks = [start + step for step in STEPS]
        # The staff publish two versions shaped to the journey: one from its start, one from between two steps.
        tables = fares.get(f"{API}/fares/tables").json()["tables"]
        version, change = max(t["version"] for t in tables) + 1, rng.randrange(len(ticks) - 1)
        for number, effective in (
            (version, start - 3),
            (version + 1, (ticks[change] + ticks[change + 1]) / 2),
        ):
            r = fares.put(
                f"{API}/fares/tables/{number}", json=random_table(rng, tables[-1], number, effective, ticks)
            )
            assert r.status_code == 201, r.text
        for line in LINES:  # a terminal not synced since holds version 1 only: settlement corrects its ask
            if rng.random() < 0.75:
                offline[line].refresh()
        for pair in pairs:  # a grant expiring before the journey, between two of its steps, or later
            if pair.grant is not None:
                pair.grant = (
                    pair.grant[0],
                    rng.choice((start - 2, (ticks[1] + ticks[2]) / 2, start + 86400)),
                )
                for rider in (pair.online, pair.offline):
                    grant = {"user_id": rider.get(f"{API}/me").json()["user_id"], "category": pair.grant[0],
                             "expires_at": dt.datetime.fromtimestamp(pair.grant[1], dt.UTC).isoformat()}  # fmt: skip
                    assert concessions.post(f"{API}/concessions/grants", json=grant).status_code == 201
        assert dev.now() < start - 3, "setting up took longer than the journey's margin"
        before = {id(r): balance(r) for p in pairs for r in (p.online, p.offline)}
        print("journey:", [(p.born, p.consents, p.grant) for p in pairs], ticks, change)

        for tick in ticks:
            time.sleep(max(0.0, tick - dev.now()))
            for pair in pairs:
                if rng.random() < 0.8:
                    line = rng.choice(LINES)
                    stops = tables[-1]["lines"][line]["stops"]
                    alight = rng.choice(stops) if rng.random() < (0.7 if line == "k2" else 0.2) else None
                    board(pair, line, rng.choice(stops), alight, online, offline, clock)
            with ThreadPoolExecutor(len(LINES)) as pool:
                list(pool.map(Terminal.upload_pending, offline.values()))
            for pair in pairs:  # each upload reaches the app before the next boarding: rides in ride order
                eventually(lambda pair=pair: delivered(pair), 30)
    finally:
        for terminal in offline.values():
            terminal.close()

    tables = fares.get(f"{API}/fares/tables").json()["tables"]
    schedule = FareSchedule(msgspec.convert(t, FareTable) for t in tables)
    for pair in pairs:
        confirm_all(pair.online)
        check_twins(pair, schedule, before)


def twins(dev: Dev, rng: random.Random) -> list[Twins]:
    """Four pairs of twins: birth date, consent to share it, a staff grant (its expiry set with the journey)."""
    today = dt.datetime.fromtimestamp(dev.now(), COUNTY_TIME).date()
    facts = [(births(rng, today), rng.random() < 0.75, rng.choice((None, "student", "disability", "veteran")))
             for _ in range(4)]  # fmt: skip
    residents = riders_with_cards(dev, [born for born, _, _ in facts for _ in range(2)])
    pairs = []
    for (born, consents, category), on, off in zip(facts, residents[::2], residents[1::2], strict=True):
        for rider in (on, off) if consents else ():
            r = rider.put(f"/v1/me/consents/{APP}/birth_date", json={"granted": True})
            assert r.status_code == 200, r.text
        grant = None if category is None else (category, 0.0)
        pairs.append(Twins(born, consents, grant, on, off, ride_codes_holder(off)))
    return pairs


def board(pair: Twins, line: str, stop: str, alight: str | None, online: dict[str, httpx.Client],
          offline: dict[str, Terminal], clock: HeldClock) -> None:  # fmt: skip
    """The twins board `line` at `stop` at one instant: one shows the Ankang code online, the other an offline ride
    code; then, if `alight`, both show the same codes again to tap off there, at another instant."""
    terminal = offline[line]
    if pair.boardings:  # a code boards once: the phone shows a fresh one for the next bus
        assert pair.online.post("/v1/me/codes/ankang/revoke").status_code == 200
    code = pair.online.get("/v1/me/codes/ankang").json()["payload"]
    with clock.hold():
        ride_code = pair.holder.ride_code(terminal.now())
        r = online[line].post("/v1/scans", json={"payload": code, "scanned_at": int(terminal.now() * 1000),
                                                 "stop": stop})  # fmt: skip
        assert r.status_code == 200 and r.json()["result"] == "accept", r.text
        assert r.json()["miniapp"]["missing"] is False and "admit" not in r.json()["miniapp"], r.text
        asked = terminal.fare(line, stop)
        assert terminal.scan(ride_code, asked, stop=stop).result == "accept"
        boarded = terminal.now()
    if alight is not None:
        with clock.hold():
            body = {"payload": code, "scanned_at": int(terminal.now() * 1000), "stop": alight, "tap": "off"}
            r = online[line].post("/v1/scans", json=body)
            assert r.status_code == 200 and r.json()["result"] == "accept", r.text
            assert terminal.scan(ride_code, 0, stop=alight, tap="off").result == "accept"
    at = dt.datetime.fromtimestamp(int(boarded * 1000) / 1000, dt.UTC)
    pair.boardings.append(Ride(ride_id=str(len(pair.boardings)), at=at, line=line, board=stop, alight=alight))
    pair.asked.append(asked)


def delivered(pair: Twins) -> bool:
    """The offline twin's uploads reached the app: every ride, and every tap-off applied."""
    got = rides_of(pair.offline, pair)
    return [(r["board"], r["alight"]) for r in got] == [(b.board, b.alight) for b in pair.boardings]


def months(pair: Twins) -> list[str]:
    return sorted({b.at.astimezone(COUNTY_TIME).strftime("%Y-%m") for b in pair.boardings})


def rides_of(rider: httpx.Client, pair: Twins) -> list[dict[str, Any]]:
    time.sleep(0.3)  # the app's per-resident call quota
    found = []
    for month in months(pair):
        r = rider.get(f"{API}/rides", params={"month": month})
        assert r.status_code == 200, r.text
        found += r.json()["rides"]
    return found


def check_twins(pair: Twins, schedule: FareSchedule, before: dict[int, int]) -> None:
    """Both twins' rides are what the engine prices for the journey, ride by ride; each one-card paid its total. A
    ride tapped off was charged at boarding as the engine prices it without its alighting stop, and given back
    the difference: what it costs is its fare less `tapoff_off_fen`."""
    expected = price_rides(schedule, pair.rider(), pair.boardings)
    print([(p.line, b.board, b.alight, p.table_version, p.peak_fen, p.concession, p.transfer, p.cap_off_fen,
            p.fare_fen) for p, b in zip(expected, pair.boardings, strict=True)])  # fmt: skip
    total = sum(p.fare_fen for p in expected)
    seen = {}
    for rider, mode in ((pair.online, "online"), (pair.offline, "offline")):
        got = rides_of(rider, pair)
        assert [r["mode"] for r in got] == [mode] * len(expected)
        costs = [(dt.datetime.fromisoformat(r["at"]), r["line"], r["table_version"], r["peak_fen"], r["concession"],
                  r["transfer"], r["fare_fen"] - r["tapoff_off_fen"]) for r in got]  # fmt: skip
        want = [
            (p.at, p.line, p.table_version, p.peak_fen, p.concession, p.transfer, p.fare_fen)
            for p in expected
        ]
        assert costs == want, f"{mode} rides differ from the engine's:\n{costs}\n{want}"
        untapped = [tuple(r[k] for k in COMPARED) for r in got if r["alight"] is None]
        assert untapped == [tuple(msgspec.to_builtins(p).get(k, 0) for k in COMPARED)
                            for p, b in zip(expected, pair.boardings, strict=True) if b.alight is None]  # fmt: skip
        seen[mode] = [(*(r[k] for k in COMPARED), r["board"], r["alight"], r["tapoff_off_fen"]) for r in got]
        assert eventually(lambda rider=rider: balance(rider) == before[id(rider)] - total), (mode, total)
        statements = [rider.get(f"{API}/statement", params={"month": m}).json() for m in months(pair)]
        assert sum(s["paid_fen"] for s in statements) == total, statements
        assert all(s["pending_fen"] == 0 for s in statements), statements
        if mode == "online":
            asked = sorted(p["amount_fen"] for p in rider.get("/v1/me/payments").json() if p["app_id"] == APP)
            assert asked == sorted(r["fare_fen"] for r in got if r["fare_fen"]), asked
        else:  # the terminal asked from its tables; settlement charged the version in force; the rest came back
            charged = [settlement_fare(schedule, p.line, p.at) for p in expected]
            assert [r["terminal_fen"] for r in got] == pair.asked
            assert [r["settled_fen"] for r in got] == charged
            assert [r["returned_fen"] for r in got] == [
                c - r["fare_fen"] for c, r in zip(charged, got, strict=True)
            ]
    assert seen["online"] == seen["offline"]
