"""一卡通行 tap-off against the simulator: a partner county's rider, named by no one here, is known to the bus app
only by their code's pseudonym (`event.data.holder_ref`); their tap-off finds their boarding by it and the
county owes the stage travelled, once, on the report still to come or as an adjustment on the next one."""

from __future__ import annotations

import datetime as dt

from bus_days import to_wednesday_10
from yima_sdk.testing import MiniApp

CHANGXING = 330522
NO_BOARDING = ["未找到上车记录 No boarding to tap off", "未扣费 Nothing charged"]


def _k2(miniapp: MiniApp, holder: str, stop: str, tap: str = "on", **kw: object) -> list[str]:
    return miniapp.scan(
        "bus", user=None, issuer=CHANGXING, holder=holder, unit="line:k2", stop=stop, tap=tap, **kw
    )  # type: ignore[arg-type]


def report(miniapp: MiniApp, day: dt.date) -> dict:
    r = miniapp.get("/fares/clearing", user="carol", query={"day": day.isoformat()})
    assert r.status == 200, r.body
    return dict(r.json())


def test_a_partner_tap_off_lowers_what_the_county_owes_to_the_stage_travelled_once(miniapp: MiniApp) -> None:
    wednesday = to_wednesday_10(miniapp)
    miniapp.grant_staff("carol", "fares")
    assert (
        _k2(miniapp, "li", "bus-station")[0] == "k2路 ¥4.00"
    )  # the top stage: where Li gets off is not known
    assert _k2(miniapp, "wang", "bus-station")[0] == "k2路 ¥4.00"
    miniapp.advance(minutes=15)
    # Zhao boarded nowhere: his tap-off finds no boarding of his, though Li and Wang have open ones on the K2.
    assert _k2(miniapp, "zhao", "xinhang", "off") == NO_BOARDING
    off = _k2(miniapp, "li", "xinhang", "off")
    assert off == ["k2路 bus-station → xinhang", "一卡通行 按站计价 -¥2.00"]
    assert _k2(miniapp, "li", "xinhang", "off", scan_id=miniapp.last_scan_id) == off  # delivered again
    miniapp.advance(minutes=1)
    assert _k2(miniapp, "li", "xinhang", "off") == NO_BOARDING  # the ride is closed: nothing more off
    miniapp.advance(days=1)  # Thursday: Wednesday cleared
    wed = report(miniapp, wednesday.date())
    (changxing,) = [c for c in wed["counties"] if c["issuer"] == CHANGXING]
    assert (changxing["rides"], changxing["amount_fen"]) == (2, 200 + 400)  # Li's stage, Wang's top stage
    assert sorted(r["fare_fen"] for r in wed["rides"]) == [200, 400]


def test_a_tap_off_uploaded_after_the_day_was_cleared_is_an_adjustment_on_the_next_report(
    miniapp: MiniApp,
) -> None:
    wednesday = to_wednesday_10(miniapp)
    miniapp.grant_staff("carol", "fares")
    miniapp.advance(hours=12)  # Wednesday 22:00
    assert _k2(miniapp, "li", "bus-station")[0] == "k2路 ¥4.00"
    tapped_at = (wednesday + dt.timedelta(hours=12, minutes=40)).astimezone(dt.UTC)
    miniapp.advance(hours=12)  # Thursday 10:00: Wednesday cleared with the top stage
    wed = report(miniapp, wednesday.date())
    assert [c["amount_fen"] for c in wed["counties"] if c["issuer"] == CHANGXING] == [400]
    # The rear door's reader was offline: Li's tap-off of Wednesday 22:40 arrives now.
    off = _k2(
        miniapp, "li", "xinhang", "off", mode="offline", credential_type="ride_code", scanned_at=tapped_at
    )
    assert off == ["k2路 bus-station → xinhang", "一卡通行 按站计价 -¥2.00"]
    assert _k2(miniapp, "li", "xinhang", "off", mode="offline", credential_type="ride_code",
               scanned_at=tapped_at, scan_id=miniapp.last_scan_id) == off  # fmt: skip
    # Friday: Thursday's report takes the 2 yuan off, once; Wednesday's stays as issued.
    miniapp.advance(days=1)
    assert report(miniapp, wednesday.date()) == wed
    thu = report(miniapp, wednesday.date() + dt.timedelta(days=1))
    (changxing,) = [c for c in thu["counties"] if c["issuer"] == CHANGXING]
    assert (changxing["rides"], changxing["amount_fen"], changxing["late_rides"]) == (0, -200, 0)
    ((day, mode, fare, late),) = [(r["day"], r["mode"], r["fare_fen"], r["late"]) for r in thu["rides"]]
    assert (day, mode, fare, late) == (wednesday.date().isoformat(), "tap_off", -200, True)
    miniapp.advance(days=1)
    assert report(miniapp, wednesday.date() + dt.timedelta(days=2))["rides"] == []  # owed on one report only
