"""Staged fares by stops travelled (分段计价) against the simulator: a boarding on the K2 pays its top stage, a
tap-off (下车刷卡) at the stop where the rider gets off gives back the stages not travelled, once, online or
offline, whichever order the scans arrive in; a rider who does not tap off pays the top stage."""

from __future__ import annotations

import asyncio
import datetime as dt
from pathlib import Path

from bus_days import seeded_at_wednesday_10, to_wednesday_10
from yima_sdk.simulator import AsyncSimulator
from yima_sdk.testing import MiniApp

NO_BOARDING = ["未找到上车记录 No boarding to tap off", "未扣费 Nothing charged"]


def _k2(miniapp: MiniApp, stop: str, tap: str = "on", **kw: object) -> list[str]:
    return miniapp.scan("bus", user="alice", unit="line:k2", stop=stop, tap=tap, **kw)  # type: ignore[arg-type]


def test_a_tap_off_gives_back_the_stages_not_travelled_once(miniapp: MiniApp) -> None:
    """Alice boards the K2 at the bus station: 4 yuan, its top stage. She taps off at Xinhang, two stops on:
    2 yuan come back at once. The same tap-off delivered again, or a second tap, gives nothing more."""
    miniapp.switches.payment_confirmation = "auto"
    month = to_wednesday_10(miniapp).strftime("%Y-%m")
    assert miniapp.get("/me", user="alice").status == 200
    start = miniapp.platform.balance("alice")
    assert _k2(miniapp, "bus-station") == ["k2路 ¥4.00"]
    assert miniapp.platform.balance("alice") == start - 400
    miniapp.advance(minutes=15)
    off = _k2(miniapp, "xinhang", "off")
    assert off == ["k2路 bus-station → xinhang", "按站计价 by stops -¥2.00 已退 refunded"]
    assert miniapp.platform.balance("alice") == start - 200
    # The platform delivers the same tap-off again: the same answer, nothing more given back.
    assert _k2(miniapp, "xinhang", "off", scan_id=miniapp.last_scan_id) == off
    miniapp.advance(minutes=1)
    assert _k2(miniapp, "xinhang", "off") == NO_BOARDING  # the ride is closed: a second tap finds none
    assert miniapp.platform.balance("alice") == start - 200
    (ride,) = miniapp.get("/rides", user="alice", query={"month": month}).json()["rides"]
    assert (ride["board"], ride["alight"], ride["fare_fen"]) == ("bus-station", "xinhang", 400)
    assert (ride["tapoff_off_fen"], ride["tapoff_status"]) == (200, "refunded")
    (payment,) = miniapp.payments
    assert (payment["amount_fen"], payment["refunded_fen"]) == (400, 200)
    statement = miniapp.get("/statement", user="alice", query={"month": month}).json()
    assert (statement["paid_fen"], statement["tapoff_off_fen"], statement["tapped_off"]) == (200, 200, 1)


def test_no_tap_off_pays_the_top_stage_and_a_tap_off_without_boarding_charges_nothing(
    miniapp: MiniApp,
) -> None:
    miniapp.switches.payment_confirmation = "auto"
    to_wednesday_10(miniapp)
    assert miniapp.get("/me", user="alice").status == 200
    start = miniapp.platform.balance("alice")
    assert _k2(miniapp, "shijie", "off") == NO_BOARDING  # nothing to close: nothing charged, nothing given
    assert miniapp.platform.balance("alice") == start
    miniapp.advance(minutes=5)
    assert _k2(miniapp, "taozhou") == ["k2路 ¥4.00"]
    miniapp.advance(minutes=20)
    # She changes to line 1 without tapping off the K2: a tap-off on the K2 now closes nothing (her latest
    # boarding is line 1's), and the K2 keeps its top stage.
    assert miniapp.scan("bus", user="alice", unit="line:1", stop="bus-station") == [
        "1路 ¥1.00",
        "换乘优惠 transfer -¥1.00",
    ]
    assert _k2(miniapp, "xinhang", "off") == NO_BOARDING
    # Boarding from a stop this line does not have: the tap-off cannot price it, the top stage stays.
    miniapp.advance(hours=2)
    _k2(miniapp, "people-square")
    assert _k2(miniapp, "shijie", "off")[0] == "k2路 站点未知 Stop not on line"
    assert miniapp.platform.balance("alice") == start - 400 - 100 - 300  # the last capped: 8 yuan a day


def test_a_tap_off_before_the_fare_is_confirmed_gives_back_once_it_is(miniapp: MiniApp) -> None:
    """An online fare waits for the rider's confirmation in the shell: the tap-off's refund waits with it, and
    comes back when the rides list is next read after the confirmation, once."""
    month = to_wednesday_10(miniapp).strftime("%Y-%m")
    assert miniapp.get("/me", user="alice").status == 200
    start = miniapp.platform.balance("alice")
    _k2(miniapp, "bus-station")
    miniapp.advance(minutes=10)
    assert _k2(miniapp, "xinhang", "off") == [
        "k2路 bus-station → xinhang",
        "按站计价 -¥2.00 确认后退 after you confirm",
    ]
    (ride,) = miniapp.get("/rides", user="alice", query={"month": month}).json()["rides"]
    assert (ride["tapoff_off_fen"], ride["tapoff_status"], ride["payment_status"]) == (
        200,
        "refunding",
        "pending_confirmation",
    )
    miniapp.confirm_payment(ride["payment_id"])
    assert miniapp.platform.balance("alice") == start - 400
    (ride,) = miniapp.get("/rides", user="alice", query={"month": month}).json()["rides"]
    assert ride["tapoff_status"] == "refunded"
    assert miniapp.get("/statement", user="alice", query={"month": month}).json()["paid_fen"] == 200
    assert miniapp.platform.balance("alice") == start - 200


def test_a_fare_cap_stays_right_when_a_tap_off_lowers_a_fare(miniapp: MiniApp) -> None:
    """The daily cap is 8 yuan: K2 top 4 + K2 top 4 reach it and the third ride is free. Had Alice tapped off
    the first K2 one stop on (2 yuan), the day costs 2 + 4 + 2 = 8 all the same: the tap-off gives back
    nothing, since the third ride now costs what the cap no longer covers."""
    miniapp.switches.payment_confirmation = "auto"
    to_wednesday_10(miniapp)
    assert miniapp.get("/me", user="alice").status == 200
    start = miniapp.platform.balance("alice")
    first_at = dt.datetime.fromtimestamp(miniapp.now, dt.UTC)
    _k2(miniapp, "bus-station")
    miniapp.advance(minutes=90)
    _k2(miniapp, "bus-station")
    miniapp.advance(minutes=90)
    assert miniapp.scan("bus", user="alice", unit="line:1") == ["1路 ¥0.00", "已达封顶 fare cap reached"]
    assert miniapp.platform.balance("alice") == start - 800
    # The first K2's tap-off, uploaded late by its rear-door reader (offline): the day still costs 8 yuan.
    lines = _k2(miniapp, "taozhou", "off", mode="offline", credential_type="ride_code",
                scanned_at=first_at + dt.timedelta(minutes=10))  # fmt: skip
    assert lines == ["k2路 bus-station → taozhou", "票价不变 Fare unchanged"]
    assert miniapp.platform.balance("alice") == start - 800


def test_offline_boarding_and_tap_off_cost_what_they_would_online_in_either_order(miniapp: MiniApp) -> None:
    """Offline, the terminal charges the K2's top stage (Terminal.fare(line, board)) and settlement takes it;
    the tap-off's upload gives back the stages not travelled. A rear-door reader that uploads before the front
    door's: the tap-off waits, and the boarding is priced with both stops when it comes (one refund)."""
    miniapp.switches.payment_confirmation = "auto"
    wednesday = to_wednesday_10(miniapp)
    assert miniapp.get("/me", user="alice").status == 200
    start = miniapp.platform.balance("alice")
    ride = {"mode": "offline", "credential_type": "ride_code"}
    at = wednesday.astimezone(dt.UTC)
    assert _k2(miniapp, "bus-station", amount_fen=400, scanned_at=at, **ride) == ["k2路 ¥4.00"]
    off = _k2(miniapp, "taozhou", "off", scanned_at=at + dt.timedelta(minutes=8), **ride)
    assert off == ["k2路 bus-station → taozhou", "按站计价 by stops -¥2.00 已退 refunded"]
    assert miniapp.platform.balance("alice") == start - 200
    # Two hours later, the other way round: the tap-off (Shijie market, 4 stops on: the top stage) and then
    # Xinhang -> Shijie (one stop: 2 yuan), the tap-off's upload first.
    later = at + dt.timedelta(hours=2)
    assert _k2(miniapp, "shijie", "off", scanned_at=later + dt.timedelta(minutes=9), **ride) == NO_BOARDING
    assert _k2(miniapp, "xinhang", amount_fen=400, scanned_at=later, **ride) == ["k2路 ¥2.00"]
    assert miniapp.platform.balance("alice") == start - 400
    settled = [p for p in miniapp.payments if p["id"].startswith("ride_")]
    assert sorted((p["amount_fen"], p["refunded_fen"]) for p in settled) == [(400, 200), (400, 200)]


async def test_one_tap_off_delivered_twice_at_once_gives_back_once(miniapp_folder: Path) -> None:
    """The outbox may deliver an uploaded tap-off twice at once (a deliverer whose lease ran out, and the
    next): both take their turn in the rider's month; one closes the ride and the refund's key is the ride, so
    the money comes back once. Two readers tapping the same rider off at once close it once too."""
    async with AsyncSimulator(miniapp_folder) as sim:
        sim.switches.payment_confirmation = "auto"
        wednesday = await seeded_at_wednesday_10(sim)
        assert (await sim.request("GET", "/me", user="alice")).status == 200
        start = sim.platform.balance("alice")
        at = wednesday.astimezone(dt.UTC)
        offline = {"user": "alice", "unit": "line:k2", "mode": "offline", "credential_type": "ride_code"}
        for day in range(2):
            board_at = at + dt.timedelta(days=day)
            await sim.scan("bus", stop="bus-station", amount_fen=400, scanned_at=board_at, **offline)  # type: ignore[arg-type]
            tap = {
                "stop": "xinhang",
                "tap": "off",
                "scanned_at": board_at + dt.timedelta(minutes=9),
                **offline,
            }
            first = sim.scan("bus", terminal_id="rear", **tap)  # type: ignore[arg-type]
            if day == 0:  # the same scan twice
                nxt = f"sim-scan-{int((sim.last_scan_id or 'sim-scan-0').rsplit('-', 1)[1]) + 1}"
                second = sim.scan("bus", terminal_id="rear", scan_id=nxt, **tap)  # type: ignore[arg-type]
            else:  # two readers, two scans
                second = sim.scan("bus", terminal_id="rear-2", **tap)  # type: ignore[arg-type]
            answers = await asyncio.gather(first, second)
            refunded = ["k2路 bus-station → xinhang", "按站计价 by stops -¥2.00 已退 refunded"]
            # the same scan: both deliveries answer its refund; two scans: one closes the ride, the other finds
            # it closed (either may come first)
            assert sorted(answers) == sorted([refunded, refunded if day == 0 else NO_BOARDING]), answers
        assert start - sim.platform.balance("alice") == 2 * 200
        settled = [p for p in sim.platform.payments.values() if p["id"].startswith("ride_")]
        assert [(p["amount_fen"], p["refunded_fen"]) for p in settled] == [(400, 200), (400, 200)]


async def test_a_tap_off_arriving_with_its_boarding_still_gives_back(miniapp_folder: Path) -> None:
    """The front and rear readers upload a ride and its tap-off at the same moment: the tap-off finds no ride
    yet and is kept, the boarding looks for kept tap-offs; they take turns in the rider's month, so whichever
    commits second sees the other and the ride costs its stages travelled, every time."""
    async with AsyncSimulator(miniapp_folder) as sim:
        sim.switches.payment_confirmation = "auto"
        wednesday = await seeded_at_wednesday_10(sim)
        assert (await sim.request("GET", "/me", user="alice")).status == 200
        start = sim.platform.balance("alice")
        at = wednesday.astimezone(dt.UTC)
        offline = {"user": "alice", "unit": "line:k2", "mode": "offline", "credential_type": "ride_code"}
        for day in range(4):
            board_at = at + dt.timedelta(days=day)
            board = sim.scan(
                "bus", stop="bus-station", amount_fen=400, scanned_at=board_at, terminal_id="front", **offline
            )  # type: ignore[arg-type]
            tap = sim.scan(
                "bus", stop="xinhang", tap="off", scanned_at=board_at + dt.timedelta(minutes=9),
                terminal_id="rear", **offline,
            )  # type: ignore[arg-type]  # fmt: skip
            await (asyncio.gather(board, tap) if day % 2 == 0 else asyncio.gather(tap, board))
        assert start - sim.platform.balance("alice") == 4 * 200
        rides = [(await sim.request("GET", "/rides", user="alice", query={"month": m})).json()["rides"]
                 for m in sorted({(at + dt.timedelta(days=d)).strftime("%Y-%m") for d in range(4)})]  # fmt: skip
        assert sorted(r["alight"] for month in rides for r in month) == ["xinhang"] * 4


def test_a_tap_off_during_a_disputed_refund_gives_back_only_what_is_left(miniapp: MiniApp) -> None:
    """The fares staff refund 3 yuan of Alice's disputed 4-yuan K2 ride; the one-card service is down, so the
    dispute is left `refunding` (its amount decided, no money moved yet). She taps off at Xinhang meanwhile: the
    stages not travelled would give back 2 yuan, but only 1 is left beside the dispute's 3; the dispute asked
    again completes, and she has her 4 yuan back, not more, nothing stuck."""
    miniapp.switches.payment_confirmation = "auto"
    month = to_wednesday_10(miniapp).strftime("%Y-%m")
    miniapp.grant_staff("carol", "fares")
    assert miniapp.get("/me", user="alice").status == 200
    start = miniapp.platform.balance("alice")
    assert _k2(miniapp, "bus-station") == ["k2路 ¥4.00"]
    (ride,) = miniapp.get("/rides", user="alice", query={"month": month}).json()["rides"]
    assert miniapp.post(f"/rides/{ride['id']}/dispute", user="alice", json={"reason": "x"}).status == 201
    miniapp.switches.refund_failure = True
    cut = miniapp.post(f"/fares/disputes/{ride['id']}/refund", user="carol", json={"amount_fen": 300})
    assert cut.status >= 500, cut.text
    miniapp.switches.refund_failure = False
    miniapp.advance(minutes=15)
    assert _k2(miniapp, "xinhang", "off") == [
        "k2路 bus-station → xinhang",
        "按站计价 by stops -¥1.00 已退 refunded",
    ]
    again = miniapp.post(f"/fares/disputes/{ride['id']}/refund", user="carol", json={"amount_fen": 300})
    assert again.json() == {"ride": ride["id"], "status": "refunded", "refunded_fen": 300}, again.text
    assert miniapp.platform.balance("alice") == start
    (ride,) = miniapp.get("/rides", user="alice", query={"month": month}).json()["rides"]
    assert (ride["tapoff_off_fen"], ride["tapoff_status"]) == (100, "refunded")


def test_a_tap_off_uploaded_before_its_boarding_moves_to_it_from_an_earlier_ride(miniapp: MiniApp) -> None:
    """Alice rides the K2 at 10:00 without tapping off, and again at 11:00 from Xinhang to Shijie (offline). The
    rear reader uploads her 11:09 tap-off before the front reader uploads the 11:00 boarding: it closes the 10:00
    ride, the only one known. When the 11:00 boarding arrives, the tap-off moves to it: the 10:00 ride pays its
    top stage and the 11:00 one its stages travelled, as if the uploads had come in order (6 yuan, not 8)."""
    miniapp.switches.payment_confirmation = "auto"
    wednesday = to_wednesday_10(miniapp)
    month = wednesday.strftime("%Y-%m")
    assert miniapp.get("/me", user="alice").status == 200
    start = miniapp.platform.balance("alice")
    at = wednesday.astimezone(dt.UTC)
    off = {"mode": "offline", "credential_type": "ride_code"}
    assert _k2(miniapp, "bus-station", amount_fen=400, scanned_at=at, **off) == ["k2路 ¥4.00"]
    tap = _k2(miniapp, "shijie", "off", scanned_at=at + dt.timedelta(minutes=69), terminal_id="rear", **off)
    assert tap[0] == "k2路 bus-station → shijie"  # the only boarding known yet
    tap_id = miniapp.last_scan_id
    later = at + dt.timedelta(minutes=60)
    assert (
        _k2(miniapp, "xinhang", amount_fen=400, scanned_at=later, terminal_id="front", **off)[0]
        == "k2路 ¥2.00"
    )
    assert start - miniapp.platform.balance("alice") == 600
    rides = miniapp.get("/rides", user="alice", query={"month": month}).json()["rides"]
    assert sorted((r["board"], r["alight"]) for r in rides) == [("bus-station", None), ("xinhang", "shijie")]
    # The tap-off delivered again answers for the ride it closes now; nothing more moves.
    again = _k2(miniapp, "shijie", "off", scanned_at=at + dt.timedelta(minutes=69), terminal_id="rear",
                scan_id=tap_id, **off)  # fmt: skip
    assert again[0] == "k2路 xinhang → shijie", again
    assert start - miniapp.platform.balance("alice") == 600
