"""The bus app's fare caps through the real core (`yima dev` with the first-party apps), as a rider notices them on
the one-card balance, in the ride list and in the monthly statement. A fares clerk publishes, through the app's
staff API, a version of the table capping a day at 5 yuan (lines 1 and 2 at 2 yuan, no peak rule), in force
seconds later; riders board line 1 through real bus terminals: online (Ankang code, the fare confirmed in the
shell) and offline (ride codes on a terminal on the terminal SDK, uploaded later).

- the daily cap: past 5 yuan a day, rides are free (`已达封顶 fare cap reached`); a terminal whose clock is a day
  slow does not move a boarding out of its capped day;
- online and offline alike: offline rides uploaded after the rider's later online boardings reach the same total
  as an online twin's same boardings;
- with a concession: a 60-69 half-fare rider reaches the same 5 yuan, in twice the rides (the cap bounds what the
  rider pays, after the concession: `yima_sdk.fares`, step 5);
- the monthly cap: a version capping the month, not the day, counts the month's rides before it.

Rides fall on the real clock's day (an online boarding happens at the server's time, an offline ride code within
its device certificate's validity, which starts when the phone was certified): "the next day pays again", a month
reaching its cap over several days and the month boundary are test_real_bus_caps_days.py's, on a moved clock."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from yima_sdk.holder import Holder
from yima_sdk.terminal import Terminal

from server.seed import DEMO_OPERATOR_PHONE
from tests.e2e._real import (
    RealServer,
    enrol_terminal,
    eventually,
    private_folder,
    real_server,
    server_env,
    sign_in,
    verified_resident,
)
from tests.e2e.test_real_bus import bus_terminal, ride_codes_holder, rider_with_card, settled, top_up

APP = "gov.guangde.bus"
API = f"/v1/miniapps/{APP}/api"
COUNTY_TIME = dt.timezone(dt.timedelta(hours=8))
CAPPED = "已达封顶 fare cap reached"
HALF = "60-69岁半价 aged 60-69"
DAILY_CAP = {"daily_cap_fen": 500, "monthly_cap_fen": 15000, "peak": []}
"""The module's table: 5 yuan a day (150 a month), no peak rule (its 07:00-09:00 suspends the 60-69 half fare)."""


@dataclass
class Dev:
    server: RealServer
    operator: httpx.Client
    clerk: httpx.Client
    folder: Path


def publish(clerk: httpx.Client, **changes: Any) -> int:
    """The fares clerk publishes the newest table with `changes` as the next version, in force 3 s later; waits
    until it is."""
    tables = clerk.get(f"{API}/fares/tables").json()["tables"]
    newest = max(tables, key=lambda t: t["version"])
    version = newest["version"] + 1
    start = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=3)
    table = newest | changes | {"version": version, "effective_from": start.isoformat()}
    r = clerk.put(f"{API}/fares/tables/{version}", json=table)
    assert r.status_code == 201, r.text
    eventually(lambda: clerk.get(f"{API}/lines").json()["version"] == version, limit_s=30)
    return version


def grant_fares(operator: httpx.Client, clerk: httpx.Client) -> None:
    """The operator grants `clerk` the bus app's `fares` role, once `yima dev` has released the app (a moment
    after it answers /health)."""
    body = {"account_id": clerk.get("/v1/me").json()["id"], "role": "fares", "unit": None}

    answers: list[str] = []

    def granted() -> bool:
        r = operator.post(f"/v1/miniapps/{APP}/staff", json=body)
        answers.append(f"{r.status_code} {r.text[:200]}")
        # not released yet (nothing granted), or asked too often: ask again, less often
        if r.status_code in (404, 429) and r.json()["code"] in ("miniapp.not_found", "rate_limit.exceeded"):
            time.sleep(1)
            return False
        assert r.status_code == 201, r.text
        return True

    try:
        eventually(granted, limit_s=240)
    except AssertionError:
        raise AssertionError(f"not granted: {answers[-3:]}") from None


@pytest.fixture(scope="module")
def dev() -> Iterator[Dev]:
    with private_folder() as folder:
        env = server_env("", folder / "data", redis=False, YIMA_DEV_FIRST_PARTY="1")
        with real_server("dev", env=env) as server:
            operator = sign_in(server, DEMO_OPERATOR_PHONE)
            clerk = verified_resident(server)
            try:
                grant_fares(operator, clerk)
            except AssertionError as exc:  # with what the server said meanwhile
                raise AssertionError(f"{exc}\n{server.output()[-4000:]}") from None

            def seeded() -> bool:
                r = clerk.get(f"{API}/fares/tables")
                if r.status_code == 429:  # the resident's call quota on a slow start: ask less often
                    time.sleep(1)
                    return False
                assert r.status_code == 200, r.text + server.output()[-3000:]
                return bool(r.json()["tables"])

            eventually(seeded, limit_s=120)
            publish(clerk, **DAILY_CAP)
            yield Dev(server, operator, clerk, folder)


def one_day() -> None:
    """A test's rides fall on one county day: within 5 minutes of midnight, start after it."""
    now = dt.datetime.now(COUNTY_TIME)
    midnight = dt.datetime.combine(now.date() + dt.timedelta(days=1), dt.time(), COUNTY_TIME)
    if (midnight - now).total_seconds() < 300:
        time.sleep((midnight - now).total_seconds() + 1)


def rider(dev: Dev, birth: str = "19900301", topped_up: int = 2000) -> httpx.Client:
    """A resident born on `birth` with a one-card holding `topped_up` fen, who opened the bus app."""
    resident = rider_with_card(dev.server, birth, dev.folder)
    assert resident.get(f"{API}/me").status_code == 200
    top_up(resident, topped_up)
    return resident


def board(terminal: httpx.Client, resident: httpx.Client, scanned_at: float | None = None) -> dict[str, Any]:
    """An online boarding: the terminal scans the resident's Ankang code; the phone then shows a fresh one (a code
    boards once)."""
    r = resident.get("/v1/me/codes/ankang")
    assert r.status_code == 200, r.text
    at = time.time() if scanned_at is None else scanned_at
    r = terminal.post("/v1/scans", json={"payload": r.json()["payload"], "scanned_at": int(at * 1000)})
    assert r.status_code == 200 and r.json()["result"] == "accept", r.text
    assert resident.post("/v1/me/codes/ankang/revoke").status_code == 200
    return dict(r.json())


def shown(terminal: httpx.Client, resident: httpx.Client) -> list[str]:
    """What the terminal shows of an online boarding (the bus app's lines)."""
    return list(board(terminal, resident)["miniapp"]["lines"])


def ride_offline(terminal: Terminal, holder: Holder) -> None:
    """The phone shows its offline ride code; the terminal prices it from its table and keeps the record."""
    decision = terminal.scan(holder.ride_code(terminal.now()), terminal.fare("1"))
    assert decision.result == "accept", decision


def confirm_fares(resident: httpx.Client) -> list[int]:
    """The resident confirms every bus fare the shell asks of them; returns the amounts, in ride order."""
    asked = [p for p in resident.get("/v1/me/payments").json() if p["app_id"] == APP]
    for payment in asked:
        if payment["status"] == "pending_confirmation":
            r = resident.post(f"/v1/me/payments/{str(payment['id']).removeprefix('pay_')}/confirm")
            assert r.status_code == 200 and r.json()["status"] == "succeeded", r.text
    return [p["amount_fen"] for p in reversed(asked)]  # the shell lists the newest first


def balance(resident: httpx.Client) -> int:
    return int(resident.get("/v1/me/onecard").json()["balance_fen"])


def rides(resident: httpx.Client) -> list[dict[str, Any]]:
    time.sleep(0.4)  # the app's per-resident call quota: a few calls a second
    r = resident.get(f"{API}/rides")
    assert r.status_code == 200, r.text
    return list(r.json()["rides"])


def statement(resident: httpx.Client) -> dict[str, Any]:
    time.sleep(0.4)  # the app's per-resident call quota
    r = resident.get(f"{API}/statement")
    assert r.status_code == 200, r.text
    return dict(r.json())


def onecard_entries(resident: httpx.Client, kind: str) -> list[int]:
    month = dt.datetime.now(COUNTY_TIME).strftime("%Y-%m")
    entries = resident.get("/v1/me/onecard/statements", params={"month": month}).json()["entries"]
    return sorted(e["amount_fen"] for e in entries if e["kind"] == kind)


def test_rides_past_the_daily_cap_are_free(dev: Dev) -> None:
    """Four boardings of line 1 in a day: 2 + 2 yuan, then 1 (the day reaches 5 yuan) and nothing; the one-card
    pays 5 yuan, the ride list and the statement say the cap took the rest."""
    one_day()
    alice = rider(dev)
    line_1 = enrol_terminal(dev.server, dev.operator, "bus", APP, unit="line:1")
    assert [shown(line_1, alice) for _ in range(4)] == [
        ["1路 ¥2.00"], ["1路 ¥2.00"], ["1路 ¥1.00", CAPPED], ["1路 ¥0.00", CAPPED]
    ]  # fmt: skip
    assert confirm_fares(alice) == [200, 200, 100]  # the free ride asks nothing
    assert balance(alice) == 2000 - 500
    ridden = rides(alice)
    assert [(r["base_fen"], r["cap_off_fen"], r["fare_fen"]) for r in ridden] == [
        (200, 0, 200), (200, 0, 200), (200, 100, 100), (200, 200, 0)
    ]  # fmt: skip
    assert len({r["day"] for r in ridden}) == 1
    month = statement(alice)
    assert (month["rides"], month["base_fen"], month["cap_off_fen"], month["paid_fen"]) == (4, 800, 300, 500)


def test_a_terminal_a_day_slow_keeps_a_boarding_in_its_capped_day(dev: Dev) -> None:
    """A rider reaches the day's cap; the next bus's terminal clock is a day slow. The server decides an online
    scan by its own clock and flags the terminal's (`clock_offset_ms`); the ride happened now, so it falls on
    today, capped: free, not a full fare on yesterday's account (or last month's, on the 1st)."""
    one_day()
    bob = rider(dev)
    line_1 = enrol_terminal(dev.server, dev.operator, "bus", APP, unit="line:1")
    for _ in range(3):
        shown(line_1, bob)  # 2 + 2 + 1 yuan: the day's cap
    slow = enrol_terminal(dev.server, dev.operator, "bus", APP, unit="line:1")
    answer = board(slow, bob, scanned_at=time.time() - 86_400)
    assert answer["clock_offset_ms"] < -86_000_000, answer
    assert answer["miniapp"]["lines"] == ["1路 ¥0.00", CAPPED], answer
    assert confirm_fares(bob) == [200, 200, 100]
    assert balance(bob) == 2000 - 500
    today = dt.datetime.now(COUNTY_TIME).date().isoformat()
    assert [(r["day"], r["fare_fen"]) for r in rides(bob)] == [
        (today, 200), (today, 200), (today, 100), (today, 0)
    ]  # fmt: skip


def test_the_cap_is_reached_alike_online_and_offline(dev: Dev, tmp_path: Path) -> None:
    """A twin boards line 1 five times online; a rider boards the same five times, the first, fourth and fifth
    offline with a ride code, uploaded after her online boardings were charged. Settlement charges the table's 2
    yuan per offline ride; the app prices each in ride order (the first, arriving late, takes the cap its later
    rides missed) and gives back the rest: both pay 5 yuan, as their one-cards and statements show."""
    one_day()
    twin, carol = rider(dev), rider(dev)
    line_1 = enrol_terminal(dev.server, dev.operator, "bus", APP, unit="line:1")
    assert [shown(line_1, twin) for _ in range(5)][2:] == [
        ["1路 ¥1.00", CAPPED],
        *[["1路 ¥0.00", CAPPED]] * 2,
    ]
    assert confirm_fares(twin) == [200, 200, 100]
    assert balance(twin) == 2000 - 500

    bus = bus_terminal(dev.server, dev.operator, carol, "1", tmp_path / "line-1.sqlite")
    try:
        holder = ride_codes_holder(carol)
        assert bus.fare("1") == 200  # the table's fare: the terminal knows neither the rider nor her day
        ride_offline(bus, holder)
        # online meanwhile, the app knows of no earlier ride today: two full fares
        assert [shown(line_1, carol) for _ in range(2)] == [["1路 ¥2.00"], ["1路 ¥2.00"]]
        ride_offline(bus, holder)
        ride_offline(bus, holder)
        assert bus.upload_pending() == 3
        assert bus.upload_pending() == 0  # each record settled once, whatever the four copies did
    finally:
        bus.close()

    offline = eventually(lambda: settled(carol, 3), limit_s=60)
    assert [(r["settled_fen"], r["fare_fen"]) for r in offline] == [(200, 100), (200, 0), (200, 0)]
    assert confirm_fares(carol) == [200, 200]
    assert eventually(lambda: balance(carol) == 2000 - 500)
    assert onecard_entries(carol, "offline_ride") == [-200, -200, -200]
    assert onecard_entries(carol, "refund") == [100, 200, 200]
    hers, his = statement(carol), statement(twin)
    assert hers["paid_fen"] == his["paid_fen"] == 500, (hers, his)
    assert hers["cap_off_fen"] + hers["reordered_off_fen"] == his["cap_off_fen"] == 500, (hers, his)


def test_a_half_fare_rider_reaches_the_same_cap_in_twice_the_rides(dev: Dev, tmp_path: Path) -> None:
    """A rider aged 65 who shared her birth date pays half (1 yuan); the cap bounds what she pays after it: five
    rides reach 5 yuan, the sixth is free online, and a seventh offline is given back whole."""
    one_day()
    born = f"{dt.datetime.now(COUNTY_TIME).year - 65}0301"
    dora = rider(dev, born)
    r = dora.put(f"/v1/me/consents/{APP}/birth_date", json={"granted": True})
    assert r.status_code == 200, r.text
    line_1 = enrol_terminal(dev.server, dev.operator, "bus", APP, unit="line:1")
    assert [shown(line_1, dora) for _ in range(6)] == [
        *[["1路 ¥1.00", HALF]] * 5,
        ["1路 ¥0.00", HALF, CAPPED],
    ]
    assert confirm_fares(dora) == [100] * 5

    bus = bus_terminal(dev.server, dev.operator, dora, "1", tmp_path / "line-1.sqlite")
    try:
        ride_offline(bus, ride_codes_holder(dora))
        assert bus.upload_pending() == 1
    finally:
        bus.close()
    ((ride,),) = [eventually(lambda: settled(dora, 1), limit_s=60)]
    assert (ride["concession"], ride["settled_fen"], ride["cap_off_fen"], ride["fare_fen"]) == (
        "senior_60", 200, 100, 0
    )  # fmt: skip
    assert eventually(lambda: balance(dora) == 2000 - 500)
    assert onecard_entries(dora, "refund") == [200]
    month = statement(dora)
    assert (month["rides"], month["concession_off_fen"], month["cap_off_fen"], month["paid_fen"]) == (
        7, 700, 200, 500
    )  # fmt: skip


def test_the_monthly_cap_counts_the_months_rides_before_it(dev: Dev) -> None:
    """Two rides (4 yuan) under the daily cap; then the clerk publishes a version capping the month at 9 yuan and
    no longer the day: the day goes past 5 yuan, and once the month's rides, the earlier version's included, reach
    9 yuan, rides are free. The module's table is published again after."""
    one_day()
    erin = rider(dev)
    line_1 = enrol_terminal(dev.server, dev.operator, "bus", APP, unit="line:1")
    assert [shown(line_1, erin) for _ in range(2)] == [["1路 ¥2.00"]] * 2
    try:
        monthly = publish(dev.clerk, daily_cap_fen=None, monthly_cap_fen=900)
        assert [shown(line_1, erin) for _ in range(4)] == [
            ["1路 ¥2.00"], ["1路 ¥2.00"], ["1路 ¥1.00", CAPPED], ["1路 ¥0.00", CAPPED]
        ]  # fmt: skip
    finally:
        publish(dev.clerk, **DAILY_CAP)
    assert confirm_fares(erin) == [200, 200, 200, 200, 100]
    assert balance(erin) == 2000 - 900
    ridden = rides(erin)
    assert [r["table_version"] == monthly for r in ridden] == [False, False, True, True, True, True]
    assert [r["cap_off_fen"] for r in ridden] == [0, 0, 0, 0, 100, 200]
    month = statement(erin)
    assert (month["rides"], month["cap_off_fen"], month["paid_fen"]) == (6, 300, 900)
