"""Fare table versions beyond one page of the app's storage: the platform keeps up to 200 versions of the fares
document, and every one of them prices the rides in its time, online as the terminals do offline."""

from __future__ import annotations

import datetime as dt

from bus_days import to_wednesday_10
from yima_sdk.testing import MiniApp


def test_every_one_of_more_than_a_hundred_versions_is_in_force_in_its_time(miniapp: MiniApp) -> None:
    miniapp.switches.payment_confirmation = "auto"
    wednesday = to_wednesday_10(miniapp)
    miniapp.grant_staff("carol", "fares")
    table = miniapp.get("/fares/tables", user="carol").json()["tables"][0]
    for version in range(2, 121):  # line 1 at 1 yuan and `version` fen, each in force a minute after the last
        start = wednesday + dt.timedelta(minutes=version)
        body = table | {"version": version, "effective_from": start.isoformat()}
        body["lines"] = table["lines"] | {"1": table["lines"]["1"] | {"flat_fen": 100 + version}}
        assert miniapp.put(f"/fares/tables/{version}", user="carol", json=body).status == 201
    listed = miniapp.get("/fares/tables", user="carol").json()["tables"]
    assert sorted(t["version"] for t in listed) == list(range(1, 121))
    assert miniapp.get("/lines", user="alice").json()["version"] == 1  # none in force yet

    miniapp.advance(minutes=50, seconds=30)  # 10:50: version 50 in force
    assert miniapp.scan("bus", user="alice", unit="line:1") == ["1路 ¥1.50"]
    miniapp.advance(hours=2)  # 12:50: the last, version 120
    assert miniapp.get("/lines", user="alice").json()["version"] == 120
    assert miniapp.scan("bus", user="alice", unit="line:1") == ["1路 ¥2.20"]
    rides = miniapp.get("/rides", user="alice", query={"month": wednesday.strftime("%Y-%m")}).json()["rides"]
    assert [(r["table_version"], r["fare_fen"]) for r in rides] == [(50, 150), (120, 220)]
