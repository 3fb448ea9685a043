"""The medical visits app's fixes through the real core (`yima dev` with the first-party apps): a booking
cancelled while its fee waits on the phone leaves nothing to pay."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

import httpx
import pytest
from yima_sdk.cron import COUNTY_TIME

from server.seed import DEMO_OPERATOR_PHONE
from tests.e2e._real import (
    RealServer,
    eventually,
    private_folder,
    real_server,
    server_env,
    sign_in,
    verified_resident,
)

APP = "gov.guangde.medical"
API = f"/v1/miniapps/{APP}/api"


@pytest.fixture(scope="module")
def dev() -> Iterator[RealServer]:
    with private_folder() as folder:
        env = server_env("", folder / "data", redis=False, YIMA_DEV_FIRST_PARTY="1")
        with real_server("dev", env=env) as server:
            sign_in(server, DEMO_OPERATOR_PHONE)
            yield server


def seeded(server: RealServer) -> None:
    resident = verified_resident(server)

    def done() -> bool:
        r = resident.get(f"{API}/institutions")
        assert r.status_code == 200, r.text + server.output()[-3000:]
        return len(r.json()["institutions"]) >= 3

    eventually(done, limit_s=60)


def test_a_cancelled_bookings_fee_waiting_on_the_phone_can_no_longer_be_paid(dev: RealServer) -> None:
    seeded(dev)
    resident: httpx.Client = verified_resident(dev)
    day = (dt.datetime.now(COUNTY_TIME).date() + dt.timedelta(days=3)).isoformat()
    booked = resident.post(f"{API}/sessions/dr-chen.{day}.am/book")
    assert booked.status_code == 201, booked.text
    booking = booked.json()
    number = booking["payment_id"].removeprefix("pay_")
    cancelled = resident.delete(f"{API}/bookings/{booking['id']}")
    assert cancelled.json() == {"status": "cancelled", "refunded_fen": 0}, cancelled.text

    # the confirmation sheet was still open on her phone
    r = resident.post(f"/v1/me/payments/{number}/confirm")
    assert r.status_code == 409, r.text
    assert r.json()["code"] == "payment.already_decided" and r.json()["extra"] == {
        "payment_status": "cancelled"
    }
    payments = {str(p["id"]): p["status"] for p in resident.get("/v1/me/payments").json()}
    assert payments == {number: "cancelled"}
