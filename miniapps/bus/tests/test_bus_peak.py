"""Peak hours through the bus app: the operator's table names a peak rule; a concession rider boarding in it on a
weekday pays what the table says, online and offline (settlement re-prices, the app gives back the difference)."""

from __future__ import annotations

import datetime as dt

from bus_days import to_wednesday_10
from yima_sdk.testing import MiniApp

PEAK = {"start": "07:00", "end": "09:00", "weekdays": [1, 2, 3, 4, 5], "surcharge_fen": 50,
        "suspends": ["student", "senior_60"]}  # fmt: skip


def test_a_weekday_peak_suspends_the_concession_online_and_offline(miniapp: MiniApp) -> None:
    """The fares staff publish a table whose weekday 07:00-09:00 peak adds 0.50 and suspends the student half
    fare. Alice, a student: 2.50 at 08:00 on a weekday (online, and offline: nothing given back), 1.00 off-peak
    (online, and offline: settlement took 2.00, 1.00 comes back) and 1.00 at 08:00 on Saturday."""
    miniapp.switches.payment_confirmation = "auto"
    wednesday = to_wednesday_10(miniapp)
    alice = miniapp.get("/me", user="alice").json()["user_id"]
    miniapp.grant_staff("carol", "fares")
    miniapp.grant_staff("carol", "concessions")
    grant = {
        "user_id": alice,
        "category": "student",
        "expires_at": (wednesday + dt.timedelta(days=30)).isoformat(),
    }
    assert miniapp.post("/concessions/grants", user="carol", json=grant).status == 201
    v2 = miniapp.get("/fares/tables", user="carol").json()["tables"][0] | {"version": 2, "peak": [PEAK]}
    v2["effective_from"] = (wednesday + dt.timedelta(hours=1)).isoformat()
    assert miniapp.put("/fares/tables/2", user="carol", json=v2).status == 201

    def at(days: int, hour: int) -> None:  # to `days` after Wednesday, at `hour`:00 county time
        target = (wednesday + dt.timedelta(days=days)).replace(hour=hour)
        miniapp.advance(seconds=target.timestamp() - miniapp.now)

    def offline(amount_fen: int) -> list[str]:
        return miniapp.scan(
            "bus",
            user="alice",
            unit="line:1",
            mode="offline",
            credential_type="ride_code",
            amount_fen=amount_fen,
        )

    start = miniapp.platform.balance("alice")
    at(1, 8)  # Thursday, peak: the surcharge, no half fare
    assert miniapp.scan("bus", user="alice", unit="line:1") == ["1路 ¥2.50"]
    at(1, 10)  # Thursday, off-peak: the half fare
    assert miniapp.scan("bus", user="alice", unit="line:1") == ["1路 ¥1.00", "学生半价 student"]
    assert miniapp.platform.balance("alice") == start - 350
    at(2, 8)  # Friday, peak, offline: settlement takes the table's 2.50 and keeps it
    assert offline(250) == ["1路 ¥2.50"]
    at(2, 10)  # Friday, off-peak, offline: settlement takes 2.00, the app gives back the half fare
    assert offline(200) == ["1路 ¥1.00", "学生半价 student"]
    assert miniapp.platform.balance("alice") == start - 700
    at(3, 8)  # Saturday 08:00: the peak is for weekdays only
    assert miniapp.scan("bus", user="alice", unit="line:1") == ["1路 ¥1.00", "学生半价 student"]
    assert miniapp.platform.balance("alice") == start - 800

    rides = []
    for month in sorted({(wednesday + dt.timedelta(days=d)).strftime("%Y-%m") for d in (1, 2, 3)}):
        rides += miniapp.get("/rides", user="alice", query={"month": month}).json()["rides"]
    assert [(r["mode"], r["peak_fen"], r["concession"], r["fare_fen"], r["settled_fen"]) for r in rides] == [
        ("online", 50, None, 250, None),
        ("online", 0, "student", 100, None),
        ("offline", 50, None, 250, 250),
        ("offline", 0, "student", 100, 200),
        ("online", 0, "student", 100, None),
    ]
