"""The buying-medicine app (miniapps/medicine) through the real core: `yima dev` runs the first-party apps and
their seed jobs; a pharmacy terminal scans a resident's Ankang code and says what she may buy; a pharmacist
sells, the resident pays on her phone and is refunded; many tills selling a watched class at once stay within the 7-day limit;
the authority reads the registrations as CSV (audited); and a doctor's e-prescription from the medical app is
filled at one pharmacy only, two pharmacies asking at once."""

from __future__ import annotations

import datetime as dt
import secrets
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from yima_sdk.cron import COUNTY_TIME

from server.seed import DEMO_AUTHORITY_PHONE, DEMO_OPERATOR_PHONE, DEMO_RESIDENT_PHONE
from tests.credentials.helpers import random_id_number
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

APP = "gov.guangde.medicine"
API = f"/v1/miniapps/{APP}/api"
MEDICAL = "/v1/miniapps/gov.guangde.medical/api"
TAOZHOU, SHIJIE = "pharmacy:taozhou-1", "pharmacy:shijie-1"


@dataclass
class Dev:
    server: RealServer
    operator: httpx.Client
    tills: dict[str, httpx.Client]
    """A terminal at each of two pharmacies, at the app's scene."""


@pytest.fixture(scope="module")
def dev() -> Iterator[Dev]:
    with private_folder() as folder:
        env = server_env("", folder / "data", redis=False, YIMA_DEV_FIRST_PARTY="1")
        with real_server("dev", env=env) as server:
            operator = sign_in(server, DEMO_OPERATOR_PHONE)
            resident = verified_resident(server)

            def seeded() -> bool:  # the seed job writes pharmacies and catalogue in one commit
                r = resident.get(f"{API}/pharmacies")
                if r.status_code == 429:  # the resident's request quota, on a slow start: ask less often
                    time.sleep(1)
                    return False
                assert r.status_code == 200, r.text + server.output()[-3000:]
                return "桃州镇中心药房" in {p["name"] for p in r.json()["pharmacies"]}

            eventually(seeded, limit_s=120)
            tills = {
                unit: enrol_terminal(server, operator, "pharmacy", APP, unit=unit)
                for unit in (TAOZHOU, SHIJIE)
            }
            yield Dev(server, operator, tills)


def staff(dev: Dev, app_id: str, role: str, unit: str | None) -> httpx.Client:
    person = verified_resident(dev.server)
    body = {"account_id": person.get("/v1/me").json()["id"], "role": role, "unit": unit}
    r = dev.operator.post(f"/v1/miniapps/{app_id}/staff", json=body)
    assert r.status_code == 201, r.text
    return person


def customer(dev: Dev) -> httpx.Client:
    """A resident who opened the app once and shares her code's colour with it."""
    resident = verified_resident(dev.server)
    assert resident.get(f"{API}/purchases").status_code == 200
    assert resident.put(f"/v1/me/consents/{APP}/health_color", json={"granted": True}).status_code in (
        200,
        201,
        204,
    )
    return resident


def counter(dev: Dev, unit: str, resident: httpx.Client) -> tuple[int, list[str]]:
    """The pharmacy's terminal scans her code: the ticket number and the lines. A pharmacy spends a code once
    anywhere (docs/scan.md), so she renews her code first, as her phone would a minute later."""
    assert resident.post("/v1/me/codes/ankang/revoke").status_code == 200
    answer = scan_code(dev.tills[unit], resident)
    assert answer["result"] == "accept", answer
    lines = answer["miniapp"]["lines"]
    return int(lines[0].split()[2].rstrip(":")), lines


def sale(
    unit: str, number: int, key: str, items: list[Any], prescription: str | None = None
) -> dict[str, Any]:
    body = {"pharmacy": unit.removeprefix("pharmacy:"), "ticket": number, "key": key, "items": items}
    return body | ({"prescription": prescription} if prescription else {})


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


def test_scan_sell_pay_refund_and_the_watched_limit_under_concurrency_then_the_authoritys_csv(
    dev: Dev,
) -> None:
    # the demo resident: her one-card is open (seeded); she tops it up at the payment simulator's cashier
    resident = sign_in(dev.server, DEMO_RESIDENT_PHONE)
    top_up(resident, 5000)
    assert resident.get(f"{API}/purchases").status_code == 200
    share = resident.put(f"/v1/me/consents/{APP}/health_color", json={"granted": True})
    assert share.status_code in (200, 201, 204), share.text
    number, lines = counter(dev, TAOZHOU, resident)
    assert lines[1:] == ["处方药凭电子处方 Rx: e-prescription", "7天余 left 退热2 抗病毒2 抗菌2 止咳2"], lines
    pharmacist = staff(dev, APP, "pharmacist", TAOZHOU)
    assert resident.post(f"{API}/pharmacist/sales", json=sale(TAOZHOU, number, "a", [])).status_code == 403

    r = pharmacist.post(f"{API}/pharmacist/sales", json=sale(TAOZHOU, number, "a", [{"drug": "ibuprofen"}]))
    assert r.status_code == 201, r.text
    made = r.json()
    paying = resident.post(f"{API}/sales/{made['id']}/pay")
    assert paying.status_code == 200 and paying.json()["status"] == "pending_confirmation", paying.text
    number_of_payment = paying.json()["payment_id"].removeprefix("pay_")
    confirmed = resident.post(f"/v1/me/payments/{number_of_payment}/confirm")
    assert confirmed.status_code == 200 and confirmed.json()["status"] == "succeeded", confirmed.text
    assert pharmacist.get(f"{API}/pharmacist/sales/{made['id']}").json()["status"] == "succeeded"
    assert resident.get("/v1/me/onecard").json()["balance_fen"] == 5000 - 1800

    # returned: the money back to her one-card, one more record, and the box back in her 7-day allowance
    refunded = pharmacist.post(f"{API}/pharmacist/sales/{made['id']}/refund")
    assert refunded.status_code == 200 and refunded.json()["status"] == "refunded", refunded.text
    assert resident.get("/v1/me/onecard").json()["balance_fen"] == 5000

    # six tills at once, one box each, two boxes allowed: exactly two sales are made
    keys = [f"c{n}" for n in range(6)]
    with ThreadPoolExecutor(6) as pool:
        answers = list(pool.map(lambda key: pharmacist.post(
            f"{API}/pharmacist/sales", json=sale(TAOZHOU, number, key, [{"drug": "paracetamol"}])), keys))  # fmt: skip
    assert sorted(a.status_code for a in answers) == [201] * 2 + [409] * 4, [a.text for a in answers]
    assert {a.json()["code"] for a in answers if a.status_code == 409} == {"medicine.limit_reached"}
    assert counter(dev, SHIJIE, resident)[1][2].startswith("7天余 left 退热0 ")

    authority = staff(dev, APP, "authority", None)
    assert pharmacist.get(f"{API}/authority/registrations.csv").status_code == 403
    csv = authority.get(f"{API}/authority/registrations.csv")
    assert csv.status_code == 200 and csv.headers["content-type"] == "text/csv; charset=utf-8", csv.text
    today = dt.datetime.now(COUNTY_TIME).date().isoformat()
    assert csv.headers["content-disposition"] == f'attachment; filename="registrations-{today}-{today}.csv"'
    assert csv.headers["x-content-type-options"] == "nosniff"
    me = resident.get(f"{API}/purchases").json()["purchases"]
    assert csv.text.splitlines()[0] == "day,class,pharmacy,resident,drug,boxes,kind,sale"
    rows = [row.split(",") for row in csv.text.splitlines()[1:] if row.split(",")[7] in {p["id"] for p in me}]
    assert sorted((row[1], row[4], row[5], row[6]) for row in rows) == [
        ("antipyretic", "ibuprofen", "-1", "refund"), ("antipyretic", "ibuprofen", "1", "sale"),
        ("antipyretic", "paracetamol", "1", "sale"), ("antipyretic", "paracetamol", "1", "sale"),
    ]  # fmt: skip
    assert all(row[3].startswith("u_") for row in rows)  # the app-scoped id, no ID number
    assert authority.get(f"{API}/authority/reads").json()["reads"][0]["what"] == "csv"


def test_a_doctors_e_prescription_is_filled_at_one_pharmacy_only(dev: Dev) -> None:
    patient = customer(dev)
    # the medical app: she books today's session, checks in at the clinic terminal, the doctor prescribes
    session = f"dr-zhou.{dt.datetime.now(COUNTY_TIME).date().isoformat()}.pm"
    booking = patient.post(f"{MEDICAL}/sessions/{session}/book")
    assert booking.status_code == 201, booking.text
    clinic = enrol_terminal(dev.server, dev.operator, "clinic", "gov.guangde.medical",
                            unit="institution:guangde-people")  # fmt: skip
    assert scan_code(clinic, patient)["result"] == "accept"
    doctor = staff(dev, "gov.guangde.medical", "doctor", "institution:guangde-people")
    assert doctor.post(f"{MEDICAL}/doctor/sessions/{session}/next").status_code == 200
    finished = doctor.post(f"{MEDICAL}/doctor/bookings/{booking.json()['id']}/finish",
                           json={"items": [{"drug": "amoxicillin", "boxes": 2}]})  # fmt: skip
    assert finished.status_code == 200, finished.text
    rx = finished.json()["prescription"]["payload"]

    # she lets the medical app share its passes with the pharmacies (the catalog's consent)
    share = patient.put(
        "/v1/me/consents/gov.guangde.medical/pass_share:gov.guangde.medicine", json={"granted": True}
    )
    assert share.status_code in (200, 201, 204), share.text
    check = patient.post(f"{API}/prescriptions/check", json={"payload": rx}).json()
    assert check == {"valid": True, "items": [["amoxicillin", 2]], "filled_at": None}

    tickets = {unit: counter(dev, unit, patient)[0] for unit in (TAOZHOU, SHIJIE)}
    pharmacists = {unit: staff(dev, APP, "pharmacist", unit) for unit in (TAOZHOU, SHIJIE)}

    def fill(unit: str) -> httpx.Response:
        body = sale(unit, tickets[unit], "rx", [{"drug": "amoxicillin", "qty": 2}], rx)
        return pharmacists[unit].post(f"{API}/pharmacist/sales", json=body)

    with ThreadPoolExecutor(2) as pool:
        answers = list(pool.map(fill, [TAOZHOU, SHIJIE]))
    assert sorted(a.status_code for a in answers) == [201, 409], [a.text for a in answers]
    assert next(a for a in answers if a.status_code == 409).json()["code"] == "medicine.prescription_filled"
    filled = patient.post(f"{API}/prescriptions/check", json={"payload": rx}).json()["filled_at"]
    assert filled == next(a for a in answers if a.status_code == 201).json()["pharmacy"]


def test_a_yellow_code_set_by_the_health_authority_may_not_buy_a_watched_class(dev: Dev) -> None:
    resident = sign_in(dev.server)
    id_number = random_id_number()
    r = resident.put("/v1/me/identity", json={"name": "赵小黄", "id_number": id_number})
    assert r.status_code == 200, r.text
    assert resident.get(f"{API}/purchases").status_code == 200
    assert resident.put(f"/v1/me/consents/{APP}/health_color", json={"granted": True}).status_code == 200
    health = sign_in(dev.server, DEMO_AUTHORITY_PHONE)
    body = {"id_number": id_number, "color": "yellow", "reason": "密接 close contact"}
    assert health.post("/v1/authority/health-status", json=body).status_code == 200

    number, lines = counter(dev, TAOZHOU, resident)
    assert lines == [
        f"单号 Ticket {number}: 可购药 May buy", "处方药凭电子处方 Rx: e-prescription",
        "黄码 Yellow: 四类药不可购 No watched",
    ], lines  # fmt: skip
    pharmacist = staff(dev, APP, "pharmacist", TAOZHOU)
    refused = pharmacist.post(
        f"{API}/pharmacist/sales", json=sale(TAOZHOU, number, "y", [{"drug": "ibuprofen"}])
    )
    assert (refused.status_code, refused.json()["code"]) == (409, "medicine.code_yellow"), refused.text
    vitamins = pharmacist.post(
        f"{API}/pharmacist/sales", json=sale(TAOZHOU, number, "v", [{"drug": "vitamin-c"}])
    )
    assert vitamins.status_code == 201, vitamins.text


def coloured(dev: Dev, colour: str) -> httpx.Client:
    """A resident of the app who shares her code's colour with it, whom the health authority marks `colour`."""
    resident = sign_in(dev.server)
    id_number = random_id_number()
    r = resident.put("/v1/me/identity", json={"name": "赵小红", "id_number": id_number})
    assert r.status_code == 200, r.text
    assert resident.get(f"{API}/purchases").status_code == 200
    assert resident.put(f"/v1/me/consents/{APP}/health_color", json={"granted": True}).status_code == 200
    health = sign_in(dev.server, DEMO_AUTHORITY_PHONE)
    body = {"id_number": id_number, "color": colour, "reason": "确诊 confirmed case"}
    assert health.post("/v1/authority/health-status", json=body).status_code == 200
    assert resident.get("/v1/me/codes/ankang").json()["color"] == colour
    return resident


def test_a_red_code_is_turned_away_at_the_pharmacy_and_the_counter_says_why(dev: Dev) -> None:
    resident = coloured(dev, "red")
    # the pharmacy scene's default policy refuses a red code before any app hears of it
    answer = scan_code(dev.tills[TAOZHOU], resident)
    assert (answer["result"], answer["reason"], answer["color"]) == (
        "reject",
        "policy.color_not_allowed",
        "red",
    )
    assert answer.get("miniapp") is None, answer

    # a county that lets red codes reach its pharmacy counters (to be sent on, not sold to): the app says why
    policy = {"allowed_colours": ["green", "yellow", "red"], "show_name": False, "replay": "once",
              "accept_ride_codes": False}  # fmt: skip
    r = dev.operator.put(f"/v1/admin/scene-policies/pharmacy?scene={APP}", json=policy)
    assert r.status_code == 200, r.text
    try:
        green = customer(dev)
        before, _ = counter(dev, TAOZHOU, green)
        assert resident.post("/v1/me/codes/ankang/revoke").status_code == 200
        answer = scan_code(dev.tills[TAOZHOU], resident)
        assert answer["result"] == "accept", answer
        assert answer["miniapp"]["lines"] == [
            "红码 Red code: 不可购药 No sale", "请去发热门诊 Go to a fever clinic",
        ], answer  # fmt: skip
        # no ticket was issued to her, so no sale can name her: the next ticket follows the one before
        assert counter(dev, TAOZHOU, green)[0] == before + 1
        assert resident.get(f"{API}/purchases").json()["purchases"] == []
    finally:
        policy["allowed_colours"] = ["green", "yellow"]
        assert (
            dev.operator.put(f"/v1/admin/scene-policies/pharmacy?scene={APP}", json=policy).status_code == 200
        )
