"""The medical and medicine apps' remaining flows through the real core (`yima dev` with the first-party apps,
their seed jobs, the sandbox, real payments from the one-card): a two-way referral booked with priority, the
evening reminder run with `yima jobs run` reaching tomorrow's patients once, booking for a family member with
their consent, the 65+ fee waiver by consented birth date, a no-show giving the slot to another resident, a paid
fee refunded to the one-card (the resident cancels; the scheduler cancels the session), and the health
authority switching the purchase registration off and on and reading its summary, with a voided sale."""

from __future__ import annotations

import datetime as dt
import secrets
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from yima_sdk.cron import COUNTY_TIME

from server.seed import DEMO_RESIDENT_PHONE
from tests.conftest import valid_id_number
from tests.e2e._first_party import Dev, first_party_dev
from tests.e2e._real import (
    enrol_terminal,
    eventually,
    scan_code,
    sign_in,
    verified_resident,
)

MEDICAL = "gov.guangde.medical"
API = f"/v1/miniapps/{MEDICAL}/api"
MEDICINE = "gov.guangde.medicine"
DRUGS = f"/v1/miniapps/{MEDICINE}/api"
PEOPLE, TAOZHOU = "institution:guangde-people", "institution:taozhou"
PHARMACY = "pharmacy:taozhou-1"


@pytest.fixture(scope="module")
def dev() -> Iterator[Dev]:
    with first_party_dev(
        (f"{API}/institutions", "institutions", "桃州镇卫生院"),
        (f"{DRUGS}/pharmacies", "pharmacies", "桃州镇中心药房"),
    ) as started:
        yield started


def staff(dev: Dev, role: str, unit: str | None, app_id: str = MEDICAL) -> httpx.Client:
    person = verified_resident(dev.server)
    body = {"account_id": person.get("/v1/me").json()["id"], "role": role, "unit": unit}
    r = dev.operator.post(f"/v1/miniapps/{app_id}/staff", json=body)
    assert r.status_code == 201, r.text
    return person


def day(offset: int) -> str:
    return (dt.datetime.now(COUNTY_TIME).date() + dt.timedelta(days=offset)).isoformat()


def titles(resident: httpx.Client) -> list[str]:
    return [m["title"] for m in resident.get("/v1/me/inbox").json()]


def book(resident: httpx.Client, session: str, **body: Any) -> httpx.Response:
    return resident.post(f"{API}/sessions/{session}/book", json=body or None)


def booked(resident: httpx.Client, session: str, **body: Any) -> dict[str, Any]:
    r = book(resident, session, **body)
    assert r.status_code == 201, r.text
    return dict(r.json())


def resident_born(dev: Dev, birth: str) -> httpx.Client:
    """A resident with a real name whose ID number says she was born on `birth` (YYYYMMDD)."""
    resident = sign_in(dev.server)
    for _ in range(5):  # a random sequence number may be taken already
        id_number = valid_id_number(birth=birth, seq=f"{secrets.randbelow(1000):03d}")
        r = resident.put("/v1/me/identity", json={"name": "王秀英", "id_number": id_number})
        if r.status_code != 409:
            break
    assert r.status_code == 200, r.text
    return resident


# ---- 1. two-way referral ---------------------------------------------------------------------------------


def test_a_township_doctor_refers_up_the_patient_books_with_priority_and_is_referred_back(dev: Dev) -> None:
    patient = verified_resident(dev.server)
    township = f"dr-he.{day(0)}.am"
    visit = booked(patient, township)
    assert (
        scan_code(enrol_terminal(dev.server, dev.operator, "clinic", MEDICAL, unit=TAOZHOU), patient)[
            "result"
        ]
        == "accept"
    )
    gp = staff(dev, "doctor", TAOZHOU)
    called = gp.post(f"{API}/doctor/sessions/{township}/next")
    assert called.status_code == 200 and called.json()["booking"] == visit["id"], called.text

    refer = {"department": "guangde-people.internal", "reason": "胸痛待查 chest pain, needs a cardiologist"}
    no_reason = gp.post(f"{API}/doctor/bookings/{visit['id']}/refer", json={**refer, "reason": ""})
    assert (no_reason.status_code, no_reason.json()["code"]) == (400, "medical.reason"), no_reason.text
    up = gp.post(f"{API}/doctor/bookings/{visit['id']}/refer", json=refer)
    assert up.status_code == 201, up.text
    assert (up.json()["direction"], up.json()["to_institution"]) == ("up", "guangde-people")

    # she sees it, with the reason, and is told
    mine = patient.get(f"{API}/referrals").json()["referrals"]
    assert [(r["id"], r["reason"], r["status"]) for r in mine] == [(up.json()["id"], refer["reason"], "open")]
    assert "转诊 Referral" in titles(patient)

    # the county session keeps 2 of its 3 slots for referrals: one resident books, the next is refused
    county = f"dr-chen.{day(0)}.pm"
    scheduler = staff(dev, "scheduler", PEOPLE)
    r = scheduler.put(f"{API}/staff/sessions/{county}", json={"capacity": 3})
    assert r.status_code == 200 and r.json()["referral_reserve"] == 2, r.text
    booked(verified_resident(dev.server), county)
    refused = book(verified_resident(dev.server), county)
    assert (refused.status_code, refused.json()["code"]) == (409, "medical.full"), refused.text
    assert book(patient, county).json()["code"] == "medical.full"  # without her referral, neither
    # with it she gets a held-back slot; the referral is used
    priority = booked(patient, county, referral=up.json()["id"])
    assert priority["referral"] == up.json()["id"]
    assert patient.get(f"{API}/referrals").json()["referrals"][0]["status"] == "used"

    # at the county hospital she checks in, the cardiologist sees her and refers her back for follow-up
    lines = scan_code(enrol_terminal(dev.server, dev.operator, "clinic", MEDICAL, unit=PEOPLE), patient)
    assert lines["miniapp"]["lines"][1] == f"PM 序号 No. {priority['number']}", lines
    specialist = staff(dev, "doctor", PEOPLE)
    assert gp.post(f"{API}/doctor/sessions/{county}/next").status_code == 403  # another institution's
    called = specialist.post(f"{API}/doctor/sessions/{county}/next")
    assert called.status_code == 200 and called.json()["booking"] == priority["id"], called.text
    back = specialist.post(
        f"{API}/doctor/bookings/{priority['id']}/refer",
        json={"department": "taozhou.general", "reason": "术后随访 follow-up at the township centre"},
    )
    assert back.status_code == 201 and back.json()["direction"] == "back", back.text
    assert "下转随访 Follow-up referral" in titles(patient)
    follow_up = booked(patient, f"dr-he.{day(3)}.am", referral=back.json()["id"])
    assert follow_up["referral"] == back.json()["id"]
    statuses = {r["direction"]: r["status"] for r in patient.get(f"{API}/referrals").json()["referrals"]}
    assert statuses == {"up": "used", "back": "used"}


# ---- 2. the evening reminder ----------------------------------------------------------------------------


def run_job(dev: Dev, job: str) -> None:
    """`yima jobs run` on the server's embedded database: the running server's job runner picks it up."""

    def made_due() -> bool:
        done = dev.server.yima("jobs", "run", MEDICAL, job)
        assert done.returncode == 0, done.stdout + done.stderr  # the schedule is synced a moment after start
        assert f"{MEDICAL}: {job} (job_" in done.stdout, done.stdout
        return True

    eventually(made_due, limit_s=30)


def reminders(resident: httpx.Client) -> int:
    return titles(resident).count("明日就诊 Visit tomorrow")


def test_the_evening_reminder_reaches_tomorrows_patients_once(dev: Dev) -> None:
    tomorrow = f"dr-zhou.{day(1)}.am"
    first, second, gone, later = (verified_resident(dev.server) for _ in range(4))
    number = booked(first, tomorrow)["number"]
    booked(second, tomorrow)
    cancelled = booked(gone, tomorrow)
    assert gone.delete(f"{API}/bookings/{cancelled['id']}").status_code == 200
    booked(later, f"dr-zhou.{day(2)}.am")  # the day after tomorrow: not yet

    run_job(dev, "remind")
    eventually(lambda: reminders(first) == 1 and reminders(second) == 1, limit_s=60)
    body = next(
        m["body"] for m in first.get("/v1/me/inbox").json() if m["title"] == "明日就诊 Visit tomorrow"
    )
    assert body.startswith(f"{day(1)} 08:00 序号 No. {number}"), body

    # run again (a retry, a second evening's command): a patient booked since is reminded, nobody twice
    late = verified_resident(dev.server)
    booked(late, tomorrow)
    run_job(dev, "remind")
    eventually(lambda: reminders(late) == 1, limit_s=60)
    assert (reminders(first), reminders(second), reminders(gone), reminders(later)) == (1, 1, 0, 0)


def test_jobs_run_names_a_missing_schedule(dev: Dev) -> None:
    done = dev.server.yima("jobs", "run", MEDICAL, "no-such-job")
    assert done.returncode == 1 and "has no schedule 'no-such-job'" in done.stderr, done.stderr


# ---- 3. a family member, 4. the 65+ waiver, 5. a no-show --------------------------------------------------


def test_a_resident_books_for_her_father_with_his_consent_recorded(dev: Dev) -> None:
    daughter = verified_resident(dev.server)
    refused = daughter.post(f"{API}/family", json={"name": "张建国", "relation": "parent", "consent": False})
    assert (refused.status_code, refused.json()["code"]) == (400, "medical.member_consent"), refused.text
    added = daughter.post(f"{API}/family", json={"name": "张建国", "relation": "parent", "consent": True})
    assert added.status_code == 201 and added.json()["consent_recorded_at"] > 0, added.text
    father = added.json()["id"]
    assert [m["id"] for m in daughter.get(f"{API}/family").json()["members"]] == [father]
    # someone else cannot book for him
    stranger = book(verified_resident(dev.server), f"dr-wu.{day(2)}.am", member=father)
    assert (stranger.status_code, stranger.json()["code"]) == (404, "medical.no_such_member"), stranger.text

    session = f"dr-wu.{day(2)}.am"
    his = booked(daughter, session, member=father)
    hers = booked(daughter, session)  # the same session for herself: another booking
    assert his["id"] != hers["id"] and his["member"] == father and hers["member"] is None
    assert his["fee_fen"] == 800 and his["payment_id"].startswith("pay_")
    assert sorted(b["member"] or "" for b in daughter.get(f"{API}/bookings").json()["bookings"]) == [
        "",
        father,
    ]


def test_the_fee_is_waived_from_65_by_consented_birth_date(dev: Dev) -> None:
    session = f"dr-wu.{day(4)}.pm"
    elder = resident_born(dev, "19500302")
    unconsented = book(elder, session)  # she has not let the app read her birth date: she pays
    assert unconsented.status_code == 201, unconsented.text
    assert (unconsented.json()["fee_fen"], unconsented.json()["waived"]) == (800, False)
    assert elder.delete(f"{API}/bookings/{unconsented.json()['id']}").status_code == 200

    assert elder.put(f"/v1/me/consents/{MEDICAL}/birth_date", json={"granted": True}).status_code in (
        200,
        201,
    )
    waived = booked(elder, session)
    assert (waived["fee_fen"], waived["waived"], waived["payment_id"]) == (0, True, None), waived
    young = resident_born(dev, "19900615")
    assert young.put(f"/v1/me/consents/{MEDICAL}/birth_date", json={"granted": True}).status_code in (
        200,
        201,
    )
    paying = booked(young, session)
    assert (paying["fee_fen"], paying["waived"]) == (800, False) and paying["payment_id"].startswith("pay_")


def test_a_no_show_releases_the_slot_to_another_resident(dev: Dev) -> None:
    scheduler = staff(dev, "scheduler", PEOPLE)
    body = {"doctor": "dr-zhou", "day": day(10), "half": "pm", "capacity": 1, "fee_fen": 0}
    r = scheduler.post(f"{API}/staff/sessions", json=body)
    assert r.status_code == 201, r.text
    session = r.json()["id"]
    absent, waiting = verified_resident(dev.server), verified_resident(dev.server)
    slot = booked(absent, session)
    full = book(waiting, session)
    assert (full.status_code, full.json()["code"]) == (409, "medical.full"), full.text

    doctor = staff(dev, "doctor", PEOPLE)
    assert waiting.post(f"{API}/doctor/bookings/{slot['id']}/no-show").status_code == 403
    marked = doctor.post(f"{API}/doctor/bookings/{slot['id']}/no-show")
    assert marked.status_code == 200 and marked.json()["status"] == "no_show", marked.text
    assert absent.get(f"{API}/bookings/{slot['id']}").json()["status"] == "no_show"
    assert doctor.post(f"{API}/doctor/bookings/{slot['id']}/no-show").json()["code"] == "medical.not_in_queue"
    assert booked(waiting, session)["status"] == "booked"  # the released slot
    assert book(verified_resident(dev.server), session).json()["code"] == "medical.full"


# ---- 6. refunds that reach the one-card ------------------------------------------------------------------


def top_up(resident: httpx.Client, fen: int) -> None:
    """A top-up paid at the payment simulator's cashier, over HTTP, waited for until it is credited."""
    r = resident.post(
        "/v1/me/onecard/topups", json={"amount_fen": fen}, headers={"Idempotency-Key": secrets.token_hex(8)}
    )
    assert r.status_code == 201, r.text
    order = r.json()
    cashier = resident.get(httpx.URL(order["pay_url"]).path).json()
    assert resident.post(httpx.URL(cashier["pay"]).path).status_code == 200
    eventually(lambda: resident.get(f"/v1/me/onecard/topups/{order['order_no']}").json()["credited"])


def balance(resident: httpx.Client) -> int:
    return int(resident.get("/v1/me/onecard").json()["balance_fen"])


def paid_booking(resident: httpx.Client, session: str, fee: int) -> dict[str, Any]:
    """Booked and paid as the resident pays on her phone: the payment confirmed, from her one-card."""
    before = balance(resident)
    made = booked(resident, session)
    assert made["fee_fen"] == fee, made
    r = resident.post(f"/v1/me/payments/{made['payment_id'].removeprefix('pay_')}/confirm")
    assert r.status_code == 200 and r.json()["status"] == "succeeded", r.text
    assert balance(resident) == before - fee
    return made


def test_a_paid_fee_goes_back_to_the_one_card_on_a_cancel_and_when_the_session_is_cancelled(dev: Dev) -> None:
    resident = sign_in(dev.server, DEMO_RESIDENT_PHONE)  # her one-card is open (seeded)
    top_up(resident, 3000)
    start = balance(resident)

    # she cancels before the cut-off: the fee is back on her card
    mine = paid_booking(resident, f"dr-sun.{day(5)}.am", 500)
    cancelled = resident.delete(f"{API}/bookings/{mine['id']}")
    assert cancelled.status_code == 200, cancelled.text
    assert cancelled.json() == {"status": "cancelled", "refunded_fen": 500}
    assert balance(resident) == start
    again = resident.delete(f"{API}/bookings/{mine['id']}")  # a second tap refunds nothing more
    assert (again.status_code, again.json()["code"]) == (404, "medical.no_such_booking"), again.text
    assert balance(resident) == start

    # the scheduler cancels a session she paid for: she is told and refunded
    theirs = paid_booking(resident, f"dr-sun.{day(5)}.pm", 500)
    assert balance(resident) == start - 500
    scheduler = staff(dev, "scheduler", PEOPLE)
    r = scheduler.post(f"{API}/staff/sessions/dr-sun.{day(5)}.pm/cancel")
    assert r.status_code == 200, r.text
    assert (r.json()["told"], r.json()["refunded_fen"]) == (1, 500), r.json()
    assert balance(resident) == start
    again = scheduler.post(f"{API}/staff/sessions/dr-sun.{day(5)}.pm/cancel")  # a retried cancel
    assert (again.json()["told"], again.json()["refunded_fen"]) == (0, 0), again.text
    assert resident.get(f"{API}/bookings/{theirs['id']}").json()["status"] == "cancelled"
    assert "门诊停诊 Session cancelled" in titles(resident)


# ---- 7. medicine: the registration switch, the authority's summary, a voided sale ------------------------


def ticket(till: httpx.Client, resident: httpx.Client) -> tuple[int, list[str]]:
    """The pharmacy's terminal scans her (renewed) code: the ticket number and the lines."""
    assert resident.post("/v1/me/codes/ankang/revoke").status_code == 200
    answer = scan_code(till, resident)
    assert answer["result"] == "accept", answer
    lines = answer["miniapp"]["lines"]
    return int(lines[0].split()[2].rstrip(":")), lines


def test_the_authority_switches_registration_off_and_on_reads_its_summary_and_a_void_is_a_record(
    dev: Dev,
) -> None:
    resident = verified_resident(dev.server)
    assert resident.get(f"{DRUGS}/purchases").status_code == 200  # she opened the app
    assert resident.put(f"/v1/me/consents/{MEDICINE}/health_color", json={"granted": True}).status_code == 200
    till = enrol_terminal(dev.server, dev.operator, "pharmacy", MEDICINE, unit=PHARMACY)
    pharmacist = staff(dev, "pharmacist", PHARMACY, MEDICINE)
    authority = staff(dev, "authority", None, MEDICINE)

    def sell(drug: str, qty: int) -> httpx.Response:
        number, _ = ticket(till, resident)
        body = {"pharmacy": "taozhou-1", "ticket": number, "key": secrets.token_hex(4),
                "items": [{"drug": drug, "qty": qty}]}  # fmt: skip
        return pharmacist.post(f"{DRUGS}/pharmacist/sales", json=body)

    def summary() -> list[tuple[str, int, int]]:
        r = authority.get(f"{DRUGS}/authority/registrations")
        assert r.status_code == 200, r.text
        return [(g["class"], g["boxes"], g["sales"]) for g in r.json()["groups"]
                if (g["day"], g["pharmacy"]) == (day(0), "taozhou-1")]  # fmt: skip

    # a sale voided before she paid: one more record, her allowance back, the registration cancelled out
    sold = sell("ibuprofen", 1)
    assert sold.status_code == 201, sold.text
    assert ticket(till, resident)[1][2] == "7天余 left 退热1 抗病毒2 抗菌2 止咳2"
    void = pharmacist.post(
        f"{DRUGS}/pharmacist/sales/{sold.json()['id']}/void", json={"reason": "输错 mistyped"}
    )
    assert void.status_code == 200 and void.json()["status"] == "void", void.text
    assert pharmacist.get(f"{DRUGS}/pharmacist/sales/{sold.json()['id']}").json()["status"] == "void"
    assert ticket(till, resident)[1][2] == "7天余 left 退热2 抗病毒2 抗菌2 止咳2"
    assert summary() == [("antipyretic", 0, 1)]

    # the authority switches the registration off: no limit, nothing registered
    assert pharmacist.put(f"{DRUGS}/authority/rules", json={"watched": False}).status_code == 403
    try:
        r = authority.put(f"{DRUGS}/authority/rules", json={"watched": False})
        assert r.status_code == 200 and r.json()["watched"] is False, r.text
        assert ticket(till, resident)[1][2] == "购药登记已关闭 No registration now"
        unwatched = sell("paracetamol", 3)  # over the limit of 2 while registration is on
        assert unwatched.status_code == 201, unwatched.text
        assert summary() == [("antipyretic", 0, 1)]
    finally:
        r = authority.put(f"{DRUGS}/authority/rules", json={"watched": True})
        assert r.status_code == 200 and r.json()["watched"] is True, r.text
    # on again: the limit holds, and what is sold is registered
    over = sell("paracetamol", 3)
    assert (over.status_code, over.json()["code"]) == (409, "medicine.limit_reached"), over.text
    assert sell("paracetamol", 2).status_code == 201
    assert summary() == [("antipyretic", 2, 2)]
    reads = [r["what"] for r in authority.get(f"{DRUGS}/authority/reads").json()["reads"]]
    assert reads == ["summary"] * 3  # each read recorded
