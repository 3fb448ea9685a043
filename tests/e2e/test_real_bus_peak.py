"""Peak hours and a rejected dispute, through the real core (`yima dev` with the bus app): the fares staff publish
a version whose peak window is now, and students ride at peak and after it, online (Ankang code at a real
terminal) and offline (ride code on a terminal of the terminal SDK, uploaded); then a fares clerk rejects a
rider's dispute: the rider hears it, nothing comes back."""

from __future__ import annotations

import base64
import datetime as dt
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

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
    riders_with_cards,
)
from tests.e2e._real import (
    enrol_terminal,
    eventually,
    private_folder,
    real_server,
    scan_code,
    server_env,
    sign_in,
    verified_resident,
)
from tests.e2e.test_real_bus import ride_codes_holder

PEAK = {"surcharge_fen": 50, "suspends": ["student", "senior_60"], "weekdays": [1, 2, 3, 4, 5, 6, 7]}


@pytest.fixture(scope="module")
def dev() -> Iterator[Dev]:
    with private_folder() as folder:
        env = server_env("", folder / "data", redis=False, YIMA_DEV_FIRST_PARTY="1")
        with real_server("dev", env=env) as server:
            watcher = verified_resident(server)
            eventually(lambda: watcher.get(f"{API}/lines").status_code == 200, limit_s=90)  # seeded
            yield Dev(server, sign_in(server, DEMO_OPERATOR_PHONE), folder)


def publish_from_now(fares: httpx.Client, peak: list[dict[str, Any]]) -> float:
    """A version like the one in force (line 1 flat 2 yuan) with `peak`, in force 3 s from now; returns when."""
    tables = fares.get(f"{API}/fares/tables").json()["tables"]
    version = max(t["version"] for t in tables) + 1
    start = time.time() + 3
    table = tables[-1] | {"version": version, "peak": peak,
                          "effective_from": dt.datetime.fromtimestamp(start, dt.UTC).isoformat()}  # fmt: skip
    r = fares.put(f"{API}/fares/tables/{version}", json=table)
    assert r.status_code == 201, r.text
    return start


def test_a_peak_window_suspends_the_student_fare_online_and_offline(dev: Dev, tmp_path: Path) -> None:
    """At peak a student pays the surcharged full fare (2.50), online and offline: settlement charges it and
    nothing comes back. After the peak (a version without it), half of 2 yuan: online 1.00 asked; offline the
    terminal asks 2.00, settlement charges it, the app gives 1.00 back. Each one-card pays 3.50 in all."""
    fares, concessions = dev.staff("fares"), dev.staff("concessions")
    online_rider, offline_rider = riders_with_cards(dev, [dt.date(2008, 9, 1)] * 2)
    for rider in (online_rider, offline_rider):
        grant = {"user_id": rider.get(f"{API}/me").json()["user_id"], "category": "student",
                 "expires_at": (dt.datetime.now(dt.UTC) + dt.timedelta(days=30)).isoformat()}  # fmt: skip
        assert concessions.post(f"{API}/concessions/grants", json=grant).status_code == 201
    before = {id(r): balance(r) for r in (online_rider, offline_rider)}
    now = dt.datetime.now(COUNTY_TIME)
    if now.hour == 23 and now.minute >= 56:  # the window below would end past midnight: ride after it
        time.sleep((24 * 60 - now.hour * 60 - now.minute) * 60 + 5)
        now = dt.datetime.now(COUNTY_TIME)
    window = {"start": now.strftime("%H:%M"), "end": (now + dt.timedelta(minutes=3)).strftime("%H:%M")}
    peak_from = publish_from_now(fares, [PEAK | window])
    roots = {kid: base64.urlsafe_b64decode(k + "==")
             for kid, k in fares.get("/v1/trust-list/info").json()["root_public_keys"].items()}  # fmt: skip
    offline = offline_terminal(dev, "1", roots, tmp_path / "line-1.sqlite", HeldClock())
    online = enrol_terminal(dev.server, dev.operator, "bus", APP, unit="line:1")
    holder = ride_codes_holder(offline_rider)
    try:
        time.sleep(max(0.0, peak_from - time.time() + 0.5))
        assert scan_code(online, online_rider)["miniapp"]["lines"] == ["1路 ¥2.50"]
        assert offline.fare("1") == 250  # the synced version's peak
        assert offline.scan(holder.ride_code(offline.now()), 250).result == "accept"
        assert offline.upload_pending() == 1

        off_peak_from = publish_from_now(fares, [])
        time.sleep(max(0.0, off_peak_from - time.time() + 0.5))
        assert online_rider.post("/v1/me/codes/ankang/revoke").status_code == 200  # a fresh code
        assert scan_code(online, online_rider)["miniapp"]["lines"] == ["1路 ¥1.00", "学生半价 student"]
        asked = offline.fare("1")  # not synced since: it holds the peak version
        assert asked == 250
        assert offline.scan(holder.ride_code(offline.now()), asked).result == "accept"
        assert offline.upload_pending() == 1
    finally:
        offline.close()

    def rides(rider: httpx.Client, count: int) -> list[dict[str, Any]]:
        time.sleep(0.3)  # the app's per-resident call quota
        found = rider.get(f"{API}/rides").json()["rides"]
        assert len(found) == count and all(r["settled_fen"] - r["returned_fen"] == r["fare_fen"]
                                           for r in found if r["mode"] == "offline")  # fmt: skip
        return list(found)

    confirm_all(online_rider)
    seen = {}
    for rider in (online_rider, offline_rider):
        found = eventually(lambda rider=rider: rides(rider, 2), limit_s=30)
        seen[id(rider)] = [(r["peak_fen"], r["concession"], r["fare_fen"]) for r in found]
        assert seen[id(rider)] == [(50, None, 250), (0, "student", 100)], found
        assert eventually(lambda rider=rider: balance(rider) == before[id(rider)] - 350)
    offline_rides = rides(offline_rider, 2)
    assert [(r["terminal_fen"], r["settled_fen"], r["returned_fen"]) for r in offline_rides] == [
        (250, 250, 0), (250, 200, 100)
    ]  # fmt: skip
    # The rider disputes the peak fare; a fares clerk rejects it: the rider hears why, nothing comes back.
    for rider, ride in ((online_rider, rides(online_rider, 2)[0]), (offline_rider, offline_rides[0])):
        reject_dispute(fares, rider, ride)


def reject_dispute(fares: httpx.Client, rider: httpx.Client, ride: dict[str, Any]) -> None:
    before = balance(rider)
    r = rider.post(f"{API}/rides/{ride['id']}/dispute", json={"reason": "the peak surcharge is wrong"})
    assert r.status_code == 201, r.text
    path = f"{API}/fares/disputes/{ride['id']}"
    r = fares.post(f"{path}/reject", json={"note": "peak hour: no student half fare"})
    assert r.status_code == 200 and r.json() == {"ride": ride["id"], "status": "rejected"}, r.text
    told = [m for m in rider.get("/v1/me/inbox").json() if m["title"] == "票价申诉未获退款 Dispute declined"]
    assert [m["body"] for m in told] == ["peak hour: no student half fare"], told
    for decision in ("refund", "reject"):
        again = fares.post(f"{path}/{decision}", json={})
        assert again.status_code == 409 and again.json()["code"] == "bus.dispute_closed", again.text
    rejected = fares.get(f"{API}/fares/disputes", params={"status": "rejected"}).json()["disputes"]
    assert ride["id"] in [d["ride"] for d in rejected]
    assert balance(rider) == before
    statement = rider.get(f"{API}/statement").json()
    assert (statement["refunded_fen"], statement["paid_fen"]) == (0, 350), statement
