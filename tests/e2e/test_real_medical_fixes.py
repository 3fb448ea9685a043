"""The medical visits app's fixes through the real core (`yima dev` with the first-party apps): a booking
cancelled while its fee waits on the phone leaves nothing to pay; a session cancelled while a patient is
already called to the room tells her and refunds her fee to the one-card."""

from __future__ import annotations

import datetime as dt
import secrets
from collections.abc import Iterator

import httpx
import pytest
from yima_sdk.cron import COUNTY_TIME

from server.seed import DEMO_RESIDENT_PHONE
from tests.e2e._first_party import Dev, first_party_dev
from tests.e2e._real import (
    enrol_terminal,
    eventually,
    scan_code,
    sign_in,
    verified_resident,
)

APP = "gov.guangde.medical"
API = f"/v1/miniapps/{APP}/api"
PEOPLE = "institution:guangde-people"


@pytest.fixture(scope="module")
def dev() -> Iterator[Dev]:
    with first_party_dev() as started:
        yield started


def staff(dev: Dev, role: str) -> httpx.Client:
    person = verified_resident(dev.server)
    body = {"account_id": person.get("/v1/me").json()["id"], "role": role, "unit": PEOPLE}
    r = dev.operator.post(f"/v1/miniapps/{APP}/staff", json=body)
    assert r.status_code == 201, r.text
    return person


def balance(resident: httpx.Client) -> int:
    return int(resident.get("/v1/me/onecard").json()["balance_fen"])


def top_up(resident: httpx.Client, fen: int) -> None:
    """A top-up paid at the payment simulator's cashier, waited for until it is credited."""
    r = resident.post(
        "/v1/me/onecard/topups", json={"amount_fen": fen}, headers={"Idempotency-Key": secrets.token_hex(8)}
    )
    assert r.status_code == 201, r.text
    order = r.json()
    cashier = resident.get(httpx.URL(order["pay_url"]).path).json()
    assert resident.post(httpx.URL(cashier["pay"]).path).status_code == 200
    eventually(lambda: resident.get(f"/v1/me/onecard/topups/{order['order_no']}").json()["credited"])


def seeded(dev: Dev) -> None:
    server = dev.server
    resident = verified_resident(server)

    def done() -> bool:
        r = resident.get(f"{API}/institutions")
        assert r.status_code == 200, r.text + server.output()[-3000:]
        return len(r.json()["institutions"]) >= 3

    eventually(done, limit_s=60)


def test_a_cancelled_bookings_fee_waiting_on_the_phone_can_no_longer_be_paid(dev: Dev) -> None:
    seeded(dev)
    resident = verified_resident(dev.server)
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


def test_a_patient_already_called_is_told_and_refunded_when_the_session_is_cancelled(dev: Dev) -> None:
    seeded(dev)
    patient = sign_in(dev.server, DEMO_RESIDENT_PHONE)  # her one-card is open (seeded)
    top_up(patient, 2000)
    session = f"dr-zhou.{dt.datetime.now(COUNTY_TIME).date().isoformat()}.pm"
    booked = patient.post(f"{API}/sessions/{session}/book")
    assert booked.status_code == 201, booked.text
    booking = booked.json()
    r = patient.post(f"/v1/me/payments/{booking['payment_id'].removeprefix('pay_')}/confirm")
    assert r.status_code == 200 and r.json()["status"] == "succeeded", r.text
    paid = balance(patient)

    terminal = enrol_terminal(dev.server, dev.operator, "clinic", APP, unit=PEOPLE)
    assert scan_code(terminal, patient)["result"] == "accept"
    called = staff(dev, "doctor").post(f"{API}/doctor/sessions/{session}/next")
    assert called.status_code == 200 and called.json()["booking"] == booking["id"], called.text

    r = staff(dev, "scheduler").post(f"{API}/staff/sessions/{session}/cancel")
    assert r.status_code == 200, r.text
    assert (r.json()["told"], r.json()["refunded_fen"]) == (1, booking["fee_fen"]), r.json()
    assert balance(patient) == paid + booking["fee_fen"]
    assert patient.get(f"{API}/bookings/{booking['id']}").json()["status"] == "cancelled"
    assert "门诊停诊 Session cancelled" in [m["title"] for m in patient.get("/v1/me/inbox").json()]
