"""The tourism app (miniapps/tourism) through the real core: `yima dev` seeds it, many visitors reserve one
slot at once (exactly its capacity), seniors enter free by their consented birth date, a gate keeper checks a
ticket pass and a real gate terminal scans Ankang codes online and offline (an upload sent twice settles once),
and the bureau sees the live count."""

from __future__ import annotations

import datetime as dt
import secrets
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from yima_sdk.cron import COUNTY_TIME

from server.seed import DEMO_OPERATOR_PHONE
from tests.credentials.helpers import valid_id_number
from tests.e2e._real import (
    RealServer,
    enrol_terminal,
    eventually,
    private_folder,
    real_server,
    scan_code,
    server_env,
    sign_in,
    verified_resident,
)

APP = "gov.guangde.tourism"
API = f"/v1/miniapps/{APP}/api"


@dataclass
class Dev:
    server: RealServer
    operator: httpx.Client
    today: str


@pytest.fixture(scope="module")
def dev() -> Iterator[Dev]:
    with private_folder() as folder:
        env = server_env("", folder / "data", redis=False, YIMA_DEV_FIRST_PARTY="1")
        with real_server("dev", env=env) as server:
            visitor = verified_resident(server)

            def seeded() -> bool:
                r = visitor.get(f"{API}/spots")
                assert r.status_code == 200, r.text + server.output()[-3000:]
                return {"taiji-cave", "jishan-bamboo", "tianmu-lake"} <= {s["id"] for s in r.json()["spots"]}

            eventually(seeded, limit_s=60)
            today = dt.datetime.now(COUNTY_TIME).date().isoformat()
            yield Dev(server, sign_in(server, DEMO_OPERATOR_PHONE), today)


def staff(dev: Dev, role: str, unit: str | None) -> httpx.Client:
    person = verified_resident(dev.server)
    body = {"account_id": person.get("/v1/me").json()["id"], "role": role, "unit": unit}
    r = dev.operator.post(f"/v1/miniapps/{APP}/staff", json=body)
    assert r.status_code == 201, r.text
    return person


def senior(dev: Dev) -> httpx.Client:
    """A visitor born in 1950 who lets the app read her birth date: she enters free."""
    visitor = sign_in(dev.server)
    for _ in range(5):  # a random ID number may be taken already
        number = valid_id_number(
            birth=f"1950{1 + secrets.randbelow(12):02d}15", seq=f"{secrets.randbelow(1000):03d}"
        )
        r = visitor.put("/v1/me/identity", json={"name": "王大爷", "id_number": number})
        if r.status_code != 409:
            break
    assert r.status_code == 200, r.text
    assert visitor.put(f"/v1/me/consents/{APP}/birth_date", json={"granted": True}).status_code in (200, 201)
    return visitor


def all_day_slot(dev: Dev, spot: str, capacity: int) -> str:
    keeper = staff(dev, "spot_staff", f"spot:{spot}")
    body = {"spot": spot, "day": dev.today, "start": "00:00", "end": "23:59", "capacity": capacity}
    r = keeper.post(f"{API}/staff/slots", json=body)
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


def live(bureau: httpx.Client, spot: str) -> dict[str, Any]:
    r = bureau.get(f"{API}/bureau/live")
    assert r.status_code == 200, r.text
    return next(s for s in r.json()["spots"] if s["spot"] == spot)


def test_exactly_capacity_of_many_visitors_reserve_one_slot_at_once(dev: Dev) -> None:
    slot = all_day_slot(dev, "tianmu-lake", 5)
    visitors = [verified_resident(dev.server) for _ in range(12)]
    with ThreadPoolExecutor(len(visitors)) as pool:
        answers = list(pool.map(lambda who: who.post(f"{API}/slots/{slot}/reserve"), visitors))
    assert sorted(a.status_code for a in answers) == [201] * 5 + [409] * 7, [a.text for a in answers]
    assert {a.json()["code"] for a in answers if a.status_code == 409} == {"tourism.full"}
    tickets = [a.json() for a in answers if a.status_code == 201]
    assert len({t["number"] for t in tickets}) == 5 and all(
        t["pass"]["payload"].startswith("YP1.") for t in tickets
    )
    assert all(t["payment_id"].startswith("pay_") and t["price_fen"] == 9000 for t in tickets)
    bureau = staff(dev, "bureau", None)
    assert live(bureau, "tianmu-lake")["reserved"] >= 5


def test_gates_admit_by_pass_and_by_ankang_code_online_and_offline_exactly_once(dev: Dev) -> None:
    slot = all_day_slot(dev, "taiji-cave", 10)
    first, second, third = senior(dev), senior(dev), senior(dev)
    tickets = []
    for visitor in (first, second, third):
        r = visitor.post(f"{API}/slots/{slot}/reserve")
        assert r.status_code == 201, r.text
        assert (r.json()["price_fen"], r.json()["concession"]) == (0, "senior_free")
        tickets.append(r.json())
    bureau = staff(dev, "bureau", None)
    before = live(bureau, "taiji-cave")["admitted"]

    # the gate keeper checks the first one's ticket pass
    keeper = staff(dev, "gate_keeper", "spot:taiji-cave")
    body = {"spot": "taiji-cave", "payload": tickets[0]["pass"]["payload"], "check_id": uuid.uuid4().hex}
    assert first.post(f"{API}/gate/check", json=body).status_code == 403
    r = keeper.post(f"{API}/gate/check", json=body)
    assert r.status_code == 200 and r.json()["admit"] is True, r.text

    # the gate terminal at 太极洞 scans Ankang codes online: her ticket is used; the second one enters
    gate = enrol_terminal(dev.server, dev.operator, "scenic", APP, unit="spot:taiji-cave")
    answer = scan_code(gate, first)
    assert answer["miniapp"]["lines"][0] == "已入园 Already entered", answer
    answer = scan_code(gate, second)
    assert answer["result"] == "accept" and answer["miniapp"]["lines"][:2] == [
        "请入园 Welcome",
        "太极洞 Taiji Cave",
    ]

    # an offline gate uploads the third one's scan later, and (the answer lost) the same batch again
    offline = enrol_terminal(dev.server, dev.operator, "scenic", APP, unit="spot:taiji-cave")
    code = third.get("/v1/me/codes/ankang").json()["payload"]
    record = {"record_id": str(uuid.uuid4()), "payload": code, "scanned_at": int(time.time() * 1000),
              "clock_source": "ntp", "amount_fen": 0, "local_result": "accept", "local_reason": None}  # fmt: skip
    batch = {"batch_id": str(uuid.uuid4()), "records": [record]}
    for _ in range(2):
        r = offline.post("/v1/scans/batch", json=batch)
        assert r.status_code == 200 and r.json()["results"][0]["status"] == "accepted", r.text
    eventually(lambda: live(bureau, "taiji-cave")["admitted"] == before + 3, limit_s=20)
    assert scan_code(gate, third)["miniapp"]["lines"][0] == "已入园 Already entered"
    assert live(bureau, "taiji-cave")["admitted"] == before + 3
    assert third.get(f"{API}/tickets").json()["tickets"][0]["entered"] == 1
