"""What residents, clinic screens and the health authority see of the medical app through the real core (`yima
dev` with the first-party apps and their seed job): searching sessions by department and by doctor and day, a
yellow Ankang code at check-in sent to the fever clinic, the live queue position moving when the doctor calls,
the clinic screens showing numbers (never people), and the authority's day figures (counts, never people)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from yima_sdk.cron import COUNTY_TIME

from server.seed import DEMO_AUTHORITY_PHONE
from tests.credentials.helpers import random_id_number
from tests.e2e._first_party import Dev, first_party_dev
from tests.e2e._real import (
    enrol_terminal,
    scan_code,
    sign_in,
    verified_resident,
)

MEDICAL = "gov.guangde.medical"
API = f"/v1/miniapps/{MEDICAL}/api"
PEOPLE = "institution:guangde-people"


@pytest.fixture(scope="module")
def dev() -> Iterator[Dev]:
    with first_party_dev((f"{API}/institutions", "institutions", "桃州镇卫生院")) as started:
        yield started


def staff(dev: Dev, role: str, unit: str | None) -> httpx.Client:
    person = verified_resident(dev.server)
    body = {"account_id": person.get("/v1/me").json()["id"], "role": role, "unit": unit}
    r = dev.operator.post(f"/v1/miniapps/{MEDICAL}/staff", json=body)
    assert r.status_code == 201, r.text
    return person


def day(offset: int) -> str:
    return (dt.datetime.now(COUNTY_TIME).date() + dt.timedelta(days=offset)).isoformat()


def booked(resident: httpx.Client, session: str) -> dict[str, Any]:
    r = resident.post(f"{API}/sessions/{session}/book")
    assert r.status_code == 201, r.text
    return dict(r.json())


def search(resident: httpx.Client, **query: str) -> list[dict[str, Any]]:
    r = resident.get(f"{API}/sessions", params=query)
    assert r.status_code == 200, r.text
    return list(r.json()["sessions"])


PERSONAL = {"user_id", "member", "name", "booking", "id_number"}
"""Keys that would name or point at a patient."""


def keys(value: Any) -> set[str]:
    """Every key in a JSON document, at any depth."""
    if isinstance(value, dict):
        return set(value) | {k for v in value.values() for k in keys(v)}
    if isinstance(value, list):
        return {k for v in value for k in keys(v)}
    return set()


# ---- 1. search ---------------------------------------------------------------------------------------------


def test_residents_search_sessions_by_department_and_by_doctor_and_day(dev: Dev) -> None:
    resident = verified_resident(dev.server)
    none = resident.get(f"{API}/sessions")
    assert (none.status_code, none.json()["code"]) == (400, "medical.search_needs_a_filter"), none.text

    # paediatrics: only Dr Sun's sessions, the seeded week from today, in day order
    found = search(resident, department="guangde-people.paediatrics")
    assert {s["doctor"] for s in found} == {"dr-sun"}
    assert sorted({s["day"] for s in found}) == [day(n) for n in range(7)]
    assert [s["day"] for s in found] == sorted(s["day"] for s in found)
    assert len(found) == 14 and all(s["left"] == 20 for s in found), found

    # a booking takes a slot; a cancelled session is no longer found
    taken = f"dr-sun.{day(2)}.am"
    booked(resident, taken)
    scheduler = staff(dev, "scheduler", PEOPLE)
    gone = f"dr-sun.{day(3)}.pm"
    assert scheduler.post(f"{API}/staff/sessions/{gone}/cancel").status_code == 200
    left = {s["id"]: s["left"] for s in search(resident, department="guangde-people.paediatrics")}
    assert left[taken] == 19 and gone not in left and len(left) == 13, left

    # one doctor on one day: her morning and afternoon, nobody else's, no other day
    zhou = search(resident, doctor="dr-zhou", day=day(1))
    assert sorted((s["doctor"], s["day"], s["half"]) for s in zhou) == [
        ("dr-zhou", day(1), "am"),
        ("dr-zhou", day(1), "pm"),
    ], zhou
    # a department on one day
    internal = search(resident, department="guangde-people.internal", day=day(4))
    assert sorted(s["id"] for s in internal) == sorted(
        f"{doc}.{day(4)}.{half}" for doc in ("dr-chen", "dr-zhou") for half in ("am", "pm")
    )


# ---- 2. a yellow code at check-in ----------------------------------------------------------------------------


def test_a_yellow_code_at_check_in_is_sent_to_the_fever_clinic_and_keeps_the_booking(dev: Dev) -> None:
    patient = sign_in(dev.server)
    id_number = random_id_number()
    assert patient.put("/v1/me/identity", json={"name": "赵小黄", "id_number": id_number}).status_code == 200
    number = booked(patient, f"dr-chen.{day(0)}.am")
    share = patient.put(f"/v1/me/consents/{MEDICAL}/health_color", json={"granted": True})
    assert share.status_code == 200, share.text
    health = sign_in(dev.server, DEMO_AUTHORITY_PHONE)
    body = {"id_number": id_number, "color": "yellow", "reason": "密接 close contact"}
    assert health.post("/v1/authority/health-status", json=body).status_code == 200

    terminal = enrol_terminal(dev.server, dev.operator, "clinic", MEDICAL, unit=PEOPLE)
    answer = scan_code(terminal, patient)
    assert (answer["result"], answer["color"]) == ("accept", "yellow"), answer
    assert answer["miniapp"]["lines"] == [
        "发热门诊 Go to the fever clinic", "健康码 code yellow", f"预约保留 No. {number['number']} kept",
    ], answer  # fmt: skip
    assert patient.get(f"{API}/bookings/{number['id']}").json()["status"] == "booked"  # not in the queue


# ---- 3. the live queue and the clinic screens ----------------------------------------------------------------


def test_the_queue_position_moves_when_the_doctor_calls_and_the_screens_show_numbers_only(dev: Dev) -> None:
    session = f"dr-zhou.{day(0)}.am"
    first, second, third = (verified_resident(dev.server) for _ in range(3))
    bookings = [booked(who, session) for who in (first, second, third)]
    assert [b["number"] for b in bookings] == sorted(b["number"] for b in bookings)
    terminal = enrol_terminal(dev.server, dev.operator, "clinic", MEDICAL, unit=PEOPLE)
    for who in (first, second, third):
        assert scan_code(terminal, who)["result"] == "accept"

    def ahead(who: httpx.Client) -> list[tuple[str, int | None]]:
        r = who.get(f"{API}/bookings", params={"open": "1"})
        assert r.status_code == 200, r.text
        return [(b["status"], b["ahead"]) for b in r.json()["bookings"]]

    assert (ahead(first), ahead(second), ahead(third)) == (
        [("waiting", 0)],
        [("waiting", 1)],
        [("waiting", 2)],
    )

    doctor = staff(dev, "doctor", PEOPLE)
    called = doctor.post(f"{API}/doctor/sessions/{session}/next")
    assert called.status_code == 200 and called.json()["booking"] == bookings[0]["id"], called.text
    assert (ahead(first), ahead(second), ahead(third)) == (
        [("called", None)],
        [("waiting", 0)],
        [("waiting", 1)],
    )

    numbers = [b["number"] for b in bookings]
    people = [b["id"] for b in bookings] + ["李小红"]  # the bookings and the verified residents' name

    viewer = verified_resident(dev.server)
    one = viewer.get(f"{API}/sessions/{session}/screen")
    assert one.status_code == 200, one.text
    assert (one.json()["calling"], one.json()["next"], one.json()["waiting"]) == (
        [numbers[0]],
        numbers[1:],
        2,
    )
    everyone = viewer.get(f"{API}/screens", params={"institution": "guangde-people"})
    assert everyone.status_code == 200, everyone.text
    mine = [s for s in everyone.json()["screens"] if s["session"] == session]
    assert [(s["calling"], s["next"], s["waiting"]) for s in mine] == [([numbers[0]], numbers[1:], 2)], mine
    for text in (one.text, everyone.text):
        assert not [p for p in people if p in text], text
    assert not keys(one.json()) & PERSONAL and not keys(everyone.json()) & PERSONAL


# ---- 4. the authority's day figures --------------------------------------------------------------------------


def test_the_authority_reads_the_days_figures_as_counts_and_fees_and_only_the_authority(dev: Dev) -> None:
    when = day(6)
    residents = [verified_resident(dev.server) for _ in range(3)]
    made = [booked(residents[0], f"dr-wu.{when}.am"), booked(residents[1], f"dr-wu.{when}.pm")]
    made.append(booked(residents[2], f"dr-xu.{when}.am"))

    authority = staff(dev, "authority", None)
    for other in (residents[0], staff(dev, "doctor", PEOPLE), staff(dev, "scheduler", PEOPLE)):
        assert other.get(f"{API}/authority/day/{when}").status_code == 403
    r = authority.get(f"{API}/authority/day/{when}")
    assert r.status_code == 200, r.text
    figures = {g["institution"]: (g["bookings"], g["fees_fen"]) for g in r.json()["institutions"]}
    assert figures == {"guangde-tcm": (2, 1600), "shijie": (1, 100)}, r.json()
    assert {key for g in r.json()["institutions"] for key in g} == {"institution", "bookings", "fees_fen"}
    people = [b["id"] for b in made] + ["李小红"]
    assert not [p for p in people if p in r.text], r.text
    empty = authority.get(f"{API}/authority/day/{day(30)}")
    assert empty.status_code == 200 and empty.json()["institutions"] == [], empty.text
