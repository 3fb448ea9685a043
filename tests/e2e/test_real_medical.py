"""The medical visits app (miniapps/medical) through the real core: `yima dev` runs the first-party apps and
their seed jobs, residents book through the gateway (exactly k of many at once), a scheduler cancels a session
and everyone booked is told, a clinic terminal checks a resident in by scanning her Ankang code, and a doctor
calls her and writes an e-prescription."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from yima_sdk.cron import COUNTY_TIME

from server.seed import DEMO_AUTHORITY_PHONE
from tests.credentials.helpers import random_id_number
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
    account_id = person.get("/v1/me").json()["id"]
    body = {"account_id": account_id, "role": role, "unit": PEOPLE}
    r = dev.operator.post(f"/v1/miniapps/{APP}/staff", json=body)
    assert r.status_code == 201, r.text
    return person


def test_yima_dev_releases_the_app_with_its_demo_data(dev: Dev) -> None:
    resident = verified_resident(dev.server)

    def seeded() -> bool:
        r = resident.get(f"{API}/institutions")
        assert r.status_code == 200, r.text + dev.server.output()[-3000:]
        return {"广德市人民医院", "广德市中医院", "桃州镇卫生院"} <= {
            i["name"] for i in r.json()["institutions"]
        }

    eventually(seeded, limit_s=60)
    assert f"yima dev: {APP}: demo data by its seed job" in dev.server.output()


def test_exactly_k_of_many_residents_book_at_once_and_a_cancel_tells_them(dev: Dev) -> None:
    test_yima_dev_releases_the_app_with_its_demo_data(dev)  # the seed has run
    scheduler = staff(dev, "scheduler")
    day = (dt.datetime.now(COUNTY_TIME).date() + dt.timedelta(days=9)).isoformat()
    body = {"doctor": "dr-chen", "day": day, "half": "am", "capacity": 4, "fee_fen": 1000}
    r = scheduler.post(f"{API}/staff/sessions", json=body)
    assert r.status_code == 201, r.text
    session = r.json()["id"]

    residents = [verified_resident(dev.server) for _ in range(10)]
    with ThreadPoolExecutor(len(residents)) as pool:
        answers = list(pool.map(lambda who: who.post(f"{API}/sessions/{session}/book"), residents))
    statuses = sorted(a.status_code for a in answers)
    assert statuses == [201] * 4 + [409] * 6, [a.text for a in answers]
    assert {a.json()["code"] for a in answers if a.status_code == 409} == {"medical.full"}
    booked = [who for who, a in zip(residents, answers, strict=True) if a.status_code == 201]
    assert sorted(a.json()["number"] for a in answers if a.status_code == 201) == sorted(
        {a.json()["number"] for a in answers if a.status_code == 201}
    )  # distinct queue numbers
    payment = next(a.json() for a in answers if a.status_code == 201)
    assert payment["payment_id"].startswith("pay_") and payment["fee_fen"] == 1000

    r = scheduler.post(f"{API}/staff/sessions/{session}/cancel")
    assert r.status_code == 200 and r.json()["told"] == 4, r.text
    for who in booked:
        titles = [m["title"] for m in who.get("/v1/me/inbox").json()]
        assert "门诊停诊 Session cancelled" in titles, titles
    left = residents[0].get(f"{API}/sessions", params={"doctor": "dr-chen", "day": day}).json()["sessions"]
    assert [s["half"] for s in left] == []


def test_check_in_by_scan_then_the_doctor_calls_and_prescribes(dev: Dev) -> None:
    test_yima_dev_releases_the_app_with_its_demo_data(dev)
    today = dt.datetime.now(COUNTY_TIME).date().isoformat()
    session = f"dr-zhou.{today}.pm"
    patient = verified_resident(dev.server)
    r = patient.post(f"{API}/sessions/{session}/book")
    assert r.status_code == 201, r.text
    booking = r.json()

    # the clinic terminal at the app's scene, serving the hospital, scans her Ankang code
    terminal = enrol_terminal(dev.server, dev.operator, "clinic", APP, unit=PEOPLE)
    answer = scan_code(terminal, patient)
    assert answer["result"] == "accept", answer
    assert answer["miniapp"]["lines"] == [
        "内科 Internal medicine", f"PM 序号 No. {booking['number']}", "前面 0 人 0 ahead",
    ], answer  # fmt: skip
    assert patient.get(f"{API}/bookings/{booking['id']}").json()["status"] == "waiting"

    doctor = staff(dev, "doctor")
    assert patient.post(f"{API}/doctor/sessions/{session}/next").status_code == 403
    called = doctor.post(f"{API}/doctor/sessions/{session}/next")
    assert called.status_code == 200 and called.json()["booking"] == booking["id"], called.text
    finished = doctor.post(
        f"{API}/doctor/bookings/{booking['id']}/finish", json={"items": [{"drug": "amoxicillin", "boxes": 2}]}
    )
    assert finished.status_code == 200, finished.text
    assert finished.json()["prescription"]["payload"].startswith("YP1.")
    titles = [m["title"] for m in patient.get("/v1/me/inbox").json()]
    assert {"请就诊 Your turn", "电子处方 E-prescription"} <= set(titles), titles


def test_a_walk_in_at_a_township_centre_gets_a_number_and_a_fee_to_confirm(dev: Dev) -> None:
    test_yima_dev_releases_the_app_with_its_demo_data(dev)
    resident = verified_resident(dev.server)
    assert resident.get(f"{API}/bookings").json() == {"bookings": []}  # she has opened the app
    terminal = enrol_terminal(dev.server, dev.operator, "clinic", APP, unit="institution:taozhou")
    answer = scan_code(terminal, resident)
    lines = answer["miniapp"]["lines"]
    assert lines[0] == "现场号 Walk-in No. 1" and lines[2] == "请在手机上付费 Pay on your phone", answer
    payments = resident.get("/v1/me/payments").json()
    assert [(p["status"], p["amount_fen"]) for p in payments] == [("pending_confirmation", 100)], payments


def test_a_resident_cancels_before_the_cut_off_and_is_refused_after_it(dev: Dev) -> None:
    test_yima_dev_releases_the_app_with_its_demo_data(dev)
    tomorrow = (dt.datetime.now(COUNTY_TIME).date() + dt.timedelta(days=1)).isoformat()
    resident = verified_resident(dev.server)
    # the default cut-off, an hour before: a booking six days ahead is cancelled, her slot given back
    ahead = f"dr-sun.{(dt.date.fromisoformat(tomorrow) + dt.timedelta(days=5)).isoformat()}.am"
    booked = resident.post(f"{API}/sessions/{ahead}/book")
    assert booked.status_code == 201, booked.text
    cancelled = resident.delete(f"{API}/bookings/{booked.json()['id']}")
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled", cancelled.text

    # the scheduler closes cancelling of tomorrow afternoon's bookings 72 h before: from now on, always past
    scheduler = staff(dev, "scheduler")
    session = f"dr-sun.{tomorrow}.pm"
    r = scheduler.put(f"{API}/staff/sessions/{session}", json={"cancel_hours": 73})
    assert (r.status_code, r.json()["code"]) == (400, "medical.bad_session"), r.text
    r = scheduler.put(f"{API}/staff/sessions/{session}", json={"cancel_hours": 72})
    assert r.status_code == 200 and r.json()["cancel_hours"] == 72, r.text
    booked = resident.post(f"{API}/sessions/{session}/book")
    assert booked.status_code == 201, booked.text
    booking = booked.json()
    refused = resident.delete(f"{API}/bookings/{booking['id']}")
    assert refused.status_code == 409, refused.text
    assert refused.json()["code"] == "medical.past_cutoff"
    assert f"{72} h before the session" in refused.json()["error"]
    assert resident.get(f"{API}/bookings/{booking['id']}").json()["status"] == "booked"
    payments = {str(p["id"]): p for p in resident.get("/v1/me/payments").json()}
    assert payments[booking["payment_id"].removeprefix("pay_")]["status"] == "pending_confirmation", payments


def test_a_red_code_at_check_in_is_sent_to_the_fever_clinic_and_keeps_the_booking(dev: Dev) -> None:
    test_yima_dev_releases_the_app_with_its_demo_data(dev)
    patient = sign_in(dev.server)
    id_number = random_id_number()
    assert patient.put("/v1/me/identity", json={"name": "钱小红", "id_number": id_number}).status_code == 200
    session = f"dr-chen.{dt.datetime.now(COUNTY_TIME).date().isoformat()}.pm"
    booked = patient.post(f"{API}/sessions/{session}/book")
    assert booked.status_code == 201, booked.text
    share = patient.put(f"/v1/me/consents/{APP}/health_color", json={"granted": True})
    assert share.status_code == 200, share.text
    health = sign_in(dev.server, DEMO_AUTHORITY_PHONE)
    body = {"id_number": id_number, "color": "red", "reason": "确诊 confirmed case"}
    assert health.post("/v1/authority/health-status", json=body).status_code == 200

    terminal = enrol_terminal(dev.server, dev.operator, "clinic", APP, unit=PEOPLE)
    answer = scan_code(terminal, patient)
    assert (answer["result"], answer["color"]) == ("accept", "red"), answer  # the clinic admits red codes
    assert answer["miniapp"]["lines"] == [
        "发热门诊 Go to the fever clinic", "健康码 code red", f"预约保留 No. {booked.json()['number']} kept",
    ], answer  # fmt: skip
    assert patient.get(f"{API}/bookings/{booked.json()['id']}").json()["status"] == "booked"  # not queued
    # consent withdrawn: the next scan does not tell the app the colour, and she is checked in as anyone
    assert patient.put(f"/v1/me/consents/{APP}/health_color", json={"granted": False}).status_code == 200
    answer = scan_code(terminal, patient)
    lines = answer["miniapp"]["lines"]
    assert answer["color"] == "red" and lines[1] == f"PM 序号 No. {booked.json()['number']}", answer
    assert not any("发热门诊" in line for line in lines), answer
    assert patient.get(f"{API}/bookings/{booked.json()['id']}").json()["status"] == "waiting"
