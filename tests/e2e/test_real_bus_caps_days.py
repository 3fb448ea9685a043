"""The bus app's fare caps over several days and across a month boundary, through the real core: `yima dev` (with
the first-party apps, its embedded PostgreSQL and the apps' sandbox workers) run on a clock moved forward by
libfaketime, and restarted on the same data folder for each day, as a deployment that lives through those days. The
server's code is not touched: the whole process tree simply reads another time. The test's own clock stays real;
its terminal and residents take the server's time from the server (`/v1/terminal/public-time`), as a terminal
syncs its clock.

A fares clerk publishes a table capping a day at 5 yuan and a month at 9; a rider boards line 1 online three times
on each of three days: the last evening of a month (2 + 2 + 1 yuan: the daily cap), 00:05 on the 1st in county
time (16:05 UTC, still the old month there: the rider pays 5 yuan again, the old month's rides not counting), and
the 2nd (2 + 2 yuan reach the month's 9; the third ride is free though the day is below its cap).

Needs libfaketime (Debian's `faketime` package; .ci/system-deps installs it); skipped without it."""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
import json
import secrets
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from server.seed import DEMO_OPERATOR_PHONE
from tests.conftest import random_phone
from tests.credentials.helpers import client_assertion, public_key_b64, token_form
from tests.e2e._real import RealServer, eventually, private_folder, real_server, server_env, sign_in
from tests.e2e.test_real_bus import rider_with_card, top_up
from tests.e2e.test_real_bus_caps import grant_fares

APP = "gov.guangde.bus"
API = f"/v1/miniapps/{APP}/api"
COUNTY_TIME = dt.timezone(dt.timedelta(hours=8))
CAPPED = "已达封顶 fare cap reached"
LIBFAKETIME = Path("/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1")

pytestmark = pytest.mark.skipif(
    not LIBFAKETIME.exists(), reason="needs libfaketime (apt-get install faketime)"
)


def server_now(server: RealServer) -> float:
    """The server's time, as a terminal syncing its clock learns it (the root-signed time; its signature is
    checked by the terminal SDK's own tests)."""
    r = httpx.get(f"{server.url}/v1/terminal/public-time", params={"nonce": secrets.token_urlsafe(16)})
    assert r.status_code == 200, r.text
    statement = json.loads(base64.urlsafe_b64decode(r.json()["statement"] + "=="))
    return float(statement["server_time_ms"]) / 1000


class Deployment:
    """`yima dev` on one data folder, started at a chosen county time (libfaketime's offset from the real clock)."""

    def __init__(self, folder: Path) -> None:
        self.env = server_env(
            "", folder / "data", redis=False, YIMA_DEV_FIRST_PARTY="1", LD_PRELOAD=str(LIBFAKETIME)
        )

    @contextlib.contextmanager
    def at(self, when: dt.datetime) -> Iterator[RealServer]:
        self.env["FAKETIME"] = f"+{int(when.timestamp() - time.time())}"
        with real_server("dev", env=self.env) as server:
            assert -2 < server_now(server) - when.timestamp() < 300, server_now(server)  # moved, then started
            yield server


def bus_of_line_1(server: RealServer, key: Ed25519PrivateKey, terminal_id: str) -> httpx.Client:
    """The registered line 1 terminal signed in with its key, its assertion stamped by its synced clock."""
    now = server_now(server)
    assertion = client_assertion(
        terminal_id, key, aud=f"{server.url}/v1/terminal/token", iat=int(now), exp=int(now + 60)
    )
    terminal = httpx.Client(base_url=server.url, timeout=30)
    r = terminal.post("/v1/terminal/token", data=token_form(assertion))
    assert r.status_code == 200, r.text
    terminal.headers["authorization"] = f"Bearer {r.json()['access_token']}"
    return terminal


def boardings(server: RealServer, terminal: httpx.Client, rider: httpx.Client, n: int) -> list[list[str]]:
    """`n` online boardings of line 1, each with a fresh Ankang code, stamped with the server's time."""
    shown = []
    offset = server_now(server) - time.time()
    for _ in range(n):
        code = rider.get("/v1/me/codes/ankang").json()["payload"]
        at = int((time.time() + offset) * 1000)
        r = terminal.post("/v1/scans", json={"payload": code, "scanned_at": at})
        assert r.status_code == 200 and r.json()["result"] == "accept", r.text
        assert "clock_offset_ms" not in r.json(), r.json()
        shown.append(r.json()["miniapp"]["lines"])
        assert rider.post("/v1/me/codes/ankang/revoke").status_code == 200
    return shown


def confirm_fares(rider: httpx.Client) -> list[int]:
    """The rider confirms the fares the shell asks; returns the amounts, in ride order."""
    asked = [p for p in rider.get("/v1/me/payments").json() if p["app_id"] == APP]
    for payment in asked:
        if payment["status"] == "pending_confirmation":
            r = rider.post(f"/v1/me/payments/{str(payment['id']).removeprefix('pay_')}/confirm")
            assert r.status_code == 200 and r.json()["status"] == "succeeded", r.text
    return [p["amount_fen"] for p in reversed(asked) if p["status"] == "pending_confirmation"]


def app_get(rider: httpx.Client, path: str, month: str) -> dict[str, Any]:
    time.sleep(0.4)  # the app's per-resident call quota
    r = rider.get(f"{API}{path}", params={"month": month})
    assert r.status_code == 200, r.text
    return dict(r.json())


@pytest.fixture
def folder() -> Iterator[Path]:
    with private_folder() as path:
        yield path


def test_a_new_day_pays_again_and_a_month_counts_only_its_own_rides(folder: Path) -> None:
    now = dt.datetime.now(COUNTY_TIME)
    first = (now.replace(day=1) + dt.timedelta(days=32)).replace(
        day=1, hour=0, minute=0, second=0, microsecond=0
    )
    if (first - now).total_seconds() < 3600:  # the last evening must still be ahead
        first = (first + dt.timedelta(days=32)).replace(day=1)
    old, new = (first - dt.timedelta(days=1)).strftime("%Y-%m"), first.strftime("%Y-%m")
    deployment = Deployment(folder)
    phone, key = random_phone(), Ed25519PrivateKey.generate()

    # The last evening of the month, 23:40: the clerk publishes the caps; the rider reaches the daily cap.
    with deployment.at(first - dt.timedelta(minutes=20)) as server:
        operator = sign_in(server, DEMO_OPERATOR_PHONE)
        clerk = sign_in(server)
        grant_fares(operator, clerk)

        def seeded() -> list[dict[str, Any]]:
            r = clerk.get(f"{API}/fares/tables")
            if r.status_code == 429:  # the resident's call quota on a slow start: ask less often
                time.sleep(1)
                return []
            assert r.status_code == 200, r.text
            return list(r.json()["tables"])

        tables = eventually(seeded, limit_s=120)
        start = dt.datetime.fromtimestamp(server_now(server) + 3, dt.UTC)
        table = tables[0] | {"version": 2, "effective_from": start.isoformat(), "peak": [],
                             "daily_cap_fen": 500, "monthly_cap_fen": 900}  # fmt: skip
        r = clerk.put(f"{API}/fares/tables/2", json=table)
        assert r.status_code == 201, r.text
        body = {
            "name": "1路 bus",
            "kind": "bus",
            "scene": APP,
            "unit": "line:1",
            "public_key": public_key_b64(key),
        }
        r = operator.post("/v1/admin/terminals", json=body)
        assert r.status_code == 201, r.text
        terminal_id = r.json()["id"]
        rider = rider_with_card(server, "19900301", folder, phone)
        assert rider.get(f"{API}/me").status_code == 200
        top_up(rider, 2000)
        eventually(lambda: server_now(server) > start.timestamp() + 1)
        bus = bus_of_line_1(server, key, terminal_id)
        assert boardings(server, bus, rider, 3) == [["1路 ¥2.00"], ["1路 ¥2.00"], ["1路 ¥1.00", CAPPED]]
        assert confirm_fares(rider) == [200, 200, 100]
        evening = app_get(rider, "/statement", old)
        assert (evening["rides"], evening["cap_off_fen"], evening["paid_fen"]) == (3, 100, 500)

    # 00:05 on the 1st, county time (still the old month in UTC): a new day and a new month pay again.
    with deployment.at(first + dt.timedelta(minutes=5)) as server:
        rider = sign_in(server, phone)
        bus = bus_of_line_1(server, key, terminal_id)
        assert boardings(server, bus, rider, 3) == [["1路 ¥2.00"], ["1路 ¥2.00"], ["1路 ¥1.00", CAPPED]]
        assert confirm_fares(rider) == [200, 200, 100]
        (ride, *_) = app_get(rider, "/rides", new)["rides"]
        at = dt.datetime.fromisoformat(ride["at"])
        assert (ride["day"], at.astimezone(dt.UTC).strftime("%Y-%m")) == (first.date().isoformat(), old)

    # The 2nd, 10:00: 2 + 2 yuan bring the month to 9 yuan; the third ride is free, the day below its cap.
    with deployment.at(first + dt.timedelta(days=1, hours=10)) as server:
        rider = sign_in(server, phone)
        bus = bus_of_line_1(server, key, terminal_id)
        assert boardings(server, bus, rider, 3) == [["1路 ¥2.00"], ["1路 ¥2.00"], ["1路 ¥0.00", CAPPED]]
        assert confirm_fares(rider) == [200, 200]
        assert rider.get("/v1/me/onecard").json()["balance_fen"] == 2000 - 500 - 500 - 400
        month = app_get(rider, "/statement", new)
        assert (month["rides"], month["cap_off_fen"], month["paid_fen"]) == (6, 300, 900)
        rides = app_get(rider, "/rides", new)["rides"]
        assert [(r["day"][-2:], r["fare_fen"]) for r in rides] == [
            ("01", 200), ("01", 200), ("01", 100), ("02", 200), ("02", 200), ("02", 0)
        ]  # fmt: skip
        assert app_get(rider, "/statement", old)["paid_fen"] == 500  # the old month as it was
