"""A change of bus across midnight at a month's end: the fare engine's transfer window crosses it (caps do not:
the new day and month start afresh), online and offline alike."""

from __future__ import annotations

import datetime as dt

from bus_days import to_wednesday_10
from yima_sdk.cron import COUNTY_TIME
from yima_sdk.testing import MiniApp

TRANSFER = ["2路 ¥1.00", "换乘优惠 transfer -¥1.00"]


def test_a_boarding_after_midnight_on_the_first_transfers_from_one_before_it(miniapp: MiniApp) -> None:
    """Alice boards line 1 at 23:50 on a month's last day and line 2 at 00:10 on the 1st, online: the second is a
    transfer (1 yuan). Carol does the same offline, both rides uploaded at 00:15: settlement takes 2 yuan each,
    the app gives back the transfer's yuan. Each month's statement holds its own ride."""
    miniapp.switches.payment_confirmation = "auto"
    now = dt.datetime.fromtimestamp(to_wednesday_10(miniapp).timestamp(), COUNTY_TIME)
    first = (now.replace(day=1) + dt.timedelta(days=32)).replace(day=1, hour=0, minute=0)
    old, new = (first - dt.timedelta(days=1)).strftime("%Y-%m"), first.strftime("%Y-%m")
    for rider in ("alice", "carol"):
        assert miniapp.get("/me", user=rider).status == 200  # they opened the app once
    balances = {rider: miniapp.platform.balances[rider] for rider in ("alice", "carol")}

    def offline(line: str, at: dt.datetime) -> list[str]:
        return miniapp.scan("bus", user="carol", unit=f"line:{line}", mode="offline", credential_type="ride_code",
                            amount_fen=200, scanned_at=at)  # fmt: skip

    miniapp.advance(seconds=(first - dt.timedelta(minutes=10)).timestamp() - miniapp.now)
    assert miniapp.scan("bus", user="alice", unit="line:1") == ["1路 ¥2.00"]
    miniapp.advance(minutes=20)
    assert miniapp.scan("bus", user="alice", unit="line:2") == TRANSFER
    miniapp.advance(minutes=5)
    assert offline("1", first - dt.timedelta(minutes=8)) == ["1路 ¥2.00"]
    assert offline("2", first + dt.timedelta(minutes=12)) == TRANSFER
    for rider in ("alice", "carol"):
        assert miniapp.platform.balances[rider] == balances[rider] - 300
        months = [miniapp.get("/statement", user=rider, query={"month": m}).json() for m in (old, new)]
        assert [(s["rides"], s["transfers"], s["paid_fen"]) for s in months] == [(1, 0, 200), (1, 1, 100)]
