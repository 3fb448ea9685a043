"""The medicine app against the simulator: the counter scan's lines, a sale paid and refunded or voided, an
e-prescription filled once (two pharmacies at once), the watched-class limit under concurrency, and the
authority's switch, registrations, CSV and audit of its reads."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

from yima_sdk.testing import MiniApp

TAOZHOU, SHIJIE = "pharmacy:taozhou-1", "pharmacy:shijie-1"
MEDICAL = "gov.guangde.medical"


def seeded(miniapp: MiniApp, *residents: str) -> None:
    """Run the seed job as `yima dev` does; each resident opens the app once (an app knows only its users)."""
    miniapp.schedule_job("seed", key="yima-dev-seed")
    assert [run.ok for run in miniapp.advance(seconds=1) if run.name == "seed"] == [True]
    for resident in residents:
        assert miniapp.get("/purchases", user=resident).status == 200


def ticket(miniapp: MiniApp, user: str, unit: str = TAOZHOU) -> int:
    lines = miniapp.scan("pharmacy", user=user, unit=unit)
    assert lines[0].endswith("可购药 May buy"), lines
    return int(lines[0].split()[2].rstrip(":"))


def sell(miniapp: MiniApp, pharmacist: str, unit: str, number: int, key: str, items: list[Any],
         prescription: str | None = None) -> Any:  # fmt: skip
    body = {"pharmacy": unit.removeprefix("pharmacy:"), "ticket": number, "key": key, "items": items}
    if prescription is not None:
        body["prescription"] = prescription
    return miniapp.post("/pharmacist/sales", user=pharmacist, json=body)


def test_the_counter_scan_a_sale_paid_refunded_and_voided(miniapp: MiniApp) -> None:
    seeded(miniapp, "alice", "carol", "grandpa")
    names = {p["name"] for p in miniapp.get("/pharmacies").json()["pharmacies"]}
    assert "桃州镇中心药房" in names
    # what the pharmacist's terminal says: the ticket, prescriptions, what is left of each watched class
    first = miniapp.scan("pharmacy", user="alice", unit=TAOZHOU)
    assert first == ["单号 Ticket 1: 可购药 May buy", "处方药凭电子处方 Rx: e-prescription",
                     "7天余 left 退热2 抗病毒2 抗菌2 止咳2"]  # fmt: skip
    yellow = miniapp.scan("pharmacy", user="carol", unit=TAOZHOU)
    assert yellow[2] == "黄码 Yellow: 四类药不可购 No watched"
    miniapp.platform.set_consent("grandpa", "health_color", False)
    assert miniapp.scan("pharmacy", user="grandpa", unit=TAOZHOU)[3] == "未授权码色 Colour not shared"
    assert miniapp.scan("pharmacy", user="alice", unit="clinic:x") == [
        "终端未绑定药房 Terminal has no pharmacy"
    ]

    refused = sell(miniapp, "grandpa", TAOZHOU, 1, "t1", [{"drug": "ibuprofen"}])
    assert (refused.status, refused.json()["code"]) == (403, "miniapp.staff_required")
    miniapp.grant_staff("grandpa", "pharmacist", TAOZHOU)
    assert sell(miniapp, "grandpa", SHIJIE, 1, "t1", [{"drug": "ibuprofen"}]).json()["code"] == (
        "medicine.other_pharmacy"
    )
    assert sell(miniapp, "grandpa", TAOZHOU, 2, "y", [{"drug": "ibuprofen"}]).json()["code"] == (
        "medicine.code_yellow"
    )
    assert sell(miniapp, "grandpa", TAOZHOU, 1, "x", [{"drug": "no such/drug"}]).json()["code"] == (
        "medicine.no_such_drug"
    )
    assert miniapp.post("/sales/no%20such/pay", user="alice").json()["code"] == "medicine.no_such_sale"
    assert sell(miniapp, "grandpa", TAOZHOU, 1, "rx", [{"drug": "amlodipine"}]).json()["code"] == (
        "medicine.prescription_needed"
    )
    sale = sell(
        miniapp, "grandpa", TAOZHOU, 1, "t1", [{"drug": "ibuprofen"}, {"drug": "vitamin-c", "qty": 2}]
    )
    assert sale.status == 201, sale.json()
    made = sale.json()
    assert (made["total_fen"], made["status"]) == (1800 + 2 * 500, "awaiting_payment")
    assert sell(miniapp, "grandpa", TAOZHOU, 1, "t1", [{"drug": "ibuprofen"}]).status == 200  # a retried sale
    assert miniapp.scan("pharmacy", user="alice", unit=TAOZHOU)[2].startswith("7天余 left 退热1 ")

    # the resident pays on their phone; a second ask is the same payment
    assert miniapp.post(f"/sales/{made['id']}/pay", user="carol").status == 404
    paying = miniapp.post(f"/sales/{made['id']}/pay", user="alice").json()
    assert paying["status"] == "pending_confirmation"
    assert miniapp.post(f"/sales/{made['id']}/pay", user="alice").json()["payment_id"] == paying["payment_id"]
    assert len(miniapp.payments) == 1
    miniapp.confirm_payment(paying["payment_id"])
    balance = miniapp.platform.balances["alice"]
    assert miniapp.get(f"/pharmacist/sales/{made['id']}", user="grandpa").json()["status"] == "succeeded"
    voided = miniapp.post(f"/pharmacist/sales/{made['id']}/void", user="grandpa")
    assert voided.json()["code"] == "medicine.paid"
    refunded = miniapp.post(f"/pharmacist/sales/{made['id']}/refund", user="grandpa").json()
    assert (refunded["status"], refunded["refunded_fen"]) == ("refunded", 2800)
    assert miniapp.platform.balances["alice"] == balance + 2800
    # a refund is one more record: the sale itself is as it was, and the box is back in the 7-day allowance
    records = miniapp.get("/purchases", user="alice").json()["purchases"]
    assert [(p["id"], p["status"], p["total_fen"]) for p in records] == [(made["id"], "refunded", 2800)]
    assert miniapp.scan("pharmacy", user="alice", unit=TAOZHOU)[2].startswith("7天余 left 退热2 ")

    # a payment the one-card refuses may be paid again once the card is in order: a new attempt, a new charge
    again = sell(miniapp, "grandpa", TAOZHOU, 1, "t3", [{"drug": "vitamin-c"}]).json()
    miniapp.switches.payment_failure = True
    first_try = miniapp.post(f"/sales/{again['id']}/pay", user="alice").json()["payment_id"]
    assert miniapp.confirm_payment(first_try)["status"] == "failed"
    miniapp.switches.payment_failure = False
    second_try = miniapp.post(f"/sales/{again['id']}/pay", user="alice").json()["payment_id"]
    assert second_try != first_try
    assert miniapp.confirm_payment(second_try)["status"] == "succeeded"
    assert miniapp.post(f"/sales/{again['id']}/pay", user="alice").json() == {
        "sale": again["id"], "payment_id": second_try, "status": "succeeded",
    }  # fmt: skip

    unpaid = sell(miniapp, "grandpa", TAOZHOU, 1, "t2", [{"drug": "paracetamol", "qty": 2}]).json()
    assert miniapp.post(f"/pharmacist/sales/{unpaid['id']}/void", user="grandpa").json()["status"] == "void"
    assert miniapp.post(f"/sales/{unpaid['id']}/pay", user="alice").json()["code"] == "medicine.sale_closed"

    # the resident paying while the pharmacist voids: one of them wins, never a charge on a voided sale
    for n in range(4):
        race = sell(miniapp, "grandpa", TAOZHOU, 1, f"race{n}", [{"drug": "vitamin-c"}]).json()["id"]
        with ThreadPoolExecutor(2) as pool:
            calls = [(f"/sales/{race}/pay", "alice"), (f"/pharmacist/sales/{race}/void", "grandpa")]
            order = calls if n % 2 == 0 else calls[::-1]  # each goes first in turn
            sent = {path: pool.submit(miniapp.post, path, user=who) for path, who in order}
            paid, voided = (sent[path].result() for path, _ in calls)
        charged = [p for p in miniapp.payments if p["idempotency_key"].startswith(f"sale.{race}.")]
        if voided.status == 200:
            assert voided.json()["status"] == "void" and paid.json()["code"] == "medicine.sale_closed"
            assert charged == []
        else:
            assert (
                voided.json()["code"] == "medicine.paid" and paid.json()["status"] == "pending_confirmation"
            )
            assert len(charged) == 1


def test_an_e_prescription_is_filled_once_whichever_pharmacy_asks_first(miniapp: MiniApp) -> None:
    seeded(miniapp, "alice", "carol")
    miniapp.grant_staff("grandpa", "pharmacist", TAOZHOU)
    miniapp.grant_staff("carol", "pharmacist", SHIJIE)
    rx = miniapp.pass_from(MEDICAL, "alice", "prescription",
                           {"visit": "v1", "institution": "guangde-people", "items": [["amoxicillin", 2]]})  # fmt: skip
    theirs = miniapp.post("/prescriptions/check", user="alice", json={"payload": rx}).json()
    assert theirs == {"valid": True, "items": [["amoxicillin", 2]], "filled_at": None}
    here, there = ticket(miniapp, "alice", TAOZHOU), ticket(miniapp, "alice", SHIJIE)
    too_much = sell(miniapp, "grandpa", TAOZHOU, here, "x", [{"drug": "amoxicillin", "qty": 3}], rx)
    assert too_much.json()["code"] == "medicine.not_prescribed"
    other = miniapp.pass_from(MEDICAL, "carol", "prescription", {"items": [["amoxicillin", 2]]})
    assert (
        sell(miniapp, "grandpa", TAOZHOU, here, "x", [{"drug": "amoxicillin", "qty": 2}], other).json()[
            "code"
        ]
        == "medicine.prescription_not_theirs"
    )

    def fill(who: tuple[str, str, int]) -> Any:
        return sell(miniapp, who[0], who[1], who[2], "rx1", [{"drug": "amoxicillin", "qty": 2}], rx)

    with ThreadPoolExecutor(2) as pool:
        answers = list(pool.map(fill, [("grandpa", TAOZHOU, here), ("carol", SHIJIE, there)] * 2))
    statuses = sorted(a.status for a in answers)
    assert statuses in ([200, 201, 409, 409], [201, 409, 409, 409]), [a.json() for a in answers]
    assert {a.json()["code"] for a in answers if a.status == 409} == {"medicine.prescription_filled"}
    filled = miniapp.post("/prescriptions/check", user="alice", json={"payload": rx}).json()["filled_at"]
    assert filled in ("taozhou-1", "shijie-1")
    assert len(miniapp.get("/purchases", user="alice").json()["prescriptions_filled"]) == 1

    miniapp.set_share_consent("alice", MEDICAL, granted=False)  # revoked in the catalog
    again = ticket(miniapp, "alice", TAOZHOU)
    fresh = miniapp.pass_from(MEDICAL, "alice", "prescription", {"items": [["amlodipine", 1]]})
    refused = sell(miniapp, "grandpa", TAOZHOU, again, "y", [{"drug": "amlodipine"}], fresh).json()
    assert refused["code"] == "medicine.prescription_invalid" and "share_not_consented" in refused["error"]


def test_the_watched_limit_holds_under_concurrency_and_the_authority_reads_it(miniapp: MiniApp) -> None:
    seeded(miniapp, "alice", "carol")
    miniapp.grant_staff("grandpa", "pharmacist", TAOZHOU)
    miniapp.grant_staff("carol", "pharmacist", SHIJIE)
    tickets = {TAOZHOU: ticket(miniapp, "alice", TAOZHOU), SHIJIE: ticket(miniapp, "alice", SHIJIE)}

    def buy(n: int) -> Any:
        who, unit = [("grandpa", TAOZHOU), ("carol", SHIJIE)][n % 2]
        return sell(miniapp, who, unit, tickets[unit], f"k{n}", [{"drug": "paracetamol"}])

    with ThreadPoolExecutor(4) as pool:
        answers = list(pool.map(buy, range(6)))
    assert sorted(a.status for a in answers) == [201, 201, 409, 409, 409, 409], [a.json() for a in answers]
    assert {a.json()["code"] for a in answers if a.status == 409} == {"medicine.limit_reached"}

    # the authority: only its role reads; the switch off lifts the limit, and registration stops
    assert miniapp.get("/authority/registrations", user="grandpa").status == 403
    miniapp.grant_staff("carol", "authority")
    summary = miniapp.get("/authority/registrations", user="carol").json()
    assert [(g["class"], g["boxes"], g["sales"]) for g in summary["groups"]] in (
        [("antipyretic", 1, 1), ("antipyretic", 1, 1)],
        [("antipyretic", 2, 2)],
    )
    off = miniapp.put("/authority/rules", user="carol", json={"watched": False})
    assert off.json() == {
        "watched": False,
        "limits": dict.fromkeys(["antipyretic", "antiviral", "antibiotic", "cough"], 2),
    }
    assert miniapp.scan("pharmacy", user="alice", unit=TAOZHOU)[2] == "购药登记已关闭 No registration now"
    assert sell(miniapp, "grandpa", TAOZHOU, tickets[TAOZHOU], "k9", [{"drug": "paracetamol"}]).status == 201
    miniapp.put("/authority/rules", user="carol", json={"watched": True, "limits": {"antipyretic": 3}})
    csv = miniapp.get(
        "/authority/registrations.csv", user="carol", query={"from": "2020-01-01", "to": "2099-12-31"}
    )
    assert csv.headers["content-type"] == "text/csv; charset=utf-8"  # as the gateway passes it
    assert (
        csv.headers["content-disposition"] == 'attachment; filename="registrations-2020-01-01-2099-12-31.csv"'
    )
    rows = csv.body.decode().splitlines()
    alice = miniapp.user_id("alice")
    assert rows[0] == "day,class,pharmacy,resident,drug,boxes,kind,sale" and len(rows) == 3  # k9 unregistered
    assert all(f",antipyretic,{p},{alice},paracetamol,1,sale," in r for r, p in zip(rows[1:], sorted(
        r.split(",")[2] for r in rows[1:]), strict=True))  # fmt: skip
    # each read is audited: who (app-scoped id), what, and how many rows
    audit = miniapp.get("/authority/reads", user="carol").json()["reads"]
    assert [(r["what"], r["rows"], r["reader"]) for r in audit] == [
        ("csv", 2, miniapp.user_id("carol")), ("summary", 2, miniapp.user_id("carol"))
    ] or [(r["what"], r["rows"]) for r in audit] == [("summary", 2), ("csv", 2)]  # fmt: skip


def test_a_void_or_refund_only_adds_records_and_the_numbers_follow(miniapp: MiniApp) -> None:
    """Undoing a sale writes new documents only: every document before it is still there at the same version
    with the same value. The allowance, the e-prescription (which may be filled again), the resident's page and
    the authority's summary and CSV all read the undo from those records."""
    seeded(miniapp, "alice", "carol")
    miniapp.grant_staff("grandpa", "pharmacist", TAOZHOU)
    miniapp.grant_staff("carol", "pharmacist", SHIJIE)
    miniapp.grant_staff("carol", "authority")
    rx = miniapp.pass_from(MEDICAL, "alice", "prescription", {"items": [["amoxicillin", 2]]})
    here = ticket(miniapp, "alice", TAOZHOU)
    filled = sell(miniapp, "grandpa", TAOZHOU, here, "rx", [{"drug": "amoxicillin", "qty": 2}], rx).json()
    paid = sell(miniapp, "grandpa", TAOZHOU, here, "paid", [{"drug": "ibuprofen"}]).json()
    miniapp.confirm_payment(miniapp.post(f"/sales/{paid['id']}/pay", user="alice").json()["payment_id"])
    assert miniapp.scan("pharmacy", user="alice", unit=TAOZHOU)[2] == "7天余 left 退热1 抗病毒2 抗菌0 止咳2"
    assert miniapp.post("/prescriptions/check", user="alice", json={"payload": rx}).json()["filled_at"] == (
        "taozhou-1"
    )

    before = dict(miniapp.platform.db.records)
    assert miniapp.post(f"/pharmacist/sales/{filled['id']}/void", user="grandpa").json()["status"] == "void"
    assert (
        miniapp.post(f"/pharmacist/sales/{paid['id']}/refund", user="grandpa").json()["status"] == "refunded"
    )
    after = miniapp.platform.db.records
    assert {key: after.get(key) for key in before} == before  # nothing deleted, nothing changed
    added = sorted(key for key in after if key not in before)
    assert {after[key].version for key in added} == {1}
    assert [key for key in added if key[0] in ("ledgers", "redemptions")] == [
        ("redemptions", f"{filled['prescription']}.released")
    ]

    # the numbers read from the records: the boxes back, the prescription free, the authority's totals 0
    assert miniapp.scan("pharmacy", user="alice", unit=TAOZHOU)[2] == "7天余 left 退热2 抗病毒2 抗菌2 止咳2"
    page = miniapp.get("/purchases", user="alice").json()
    assert sorted(p["status"] for p in page["purchases"]) == ["refunded", "void"]
    assert page["prescriptions_filled"] == []
    assert (
        miniapp.post("/prescriptions/check", user="alice", json={"payload": rx}).json()["filled_at"] is None
    )
    summary = miniapp.get("/authority/registrations", user="carol").json()["groups"]
    assert sorted((g["class"], g["boxes"], g["sales"]) for g in summary) == [
        ("antibiotic", 0, 1), ("antipyretic", 0, 1)
    ]  # fmt: skip
    csv = miniapp.get("/authority/registrations.csv", user="carol").body.decode().splitlines()[1:]
    assert sorted((r.split(",")[4], r.split(",")[5], r.split(",")[6]) for r in csv) == [
        ("amoxicillin", "-2", "void"), ("amoxicillin", "2", "sale"),
        ("ibuprofen", "-1", "refund"), ("ibuprofen", "1", "sale"),
    ]  # fmt: skip

    # the allowance is whole again: two boxes sold, a third refused
    again = sell(miniapp, "grandpa", TAOZHOU, here, "two", [{"drug": "ibuprofen", "qty": 2}])
    assert again.status == 201, again.json()
    refused = sell(miniapp, "grandpa", TAOZHOU, here, "three", [{"drug": "paracetamol"}]).json()
    assert refused["code"] == "medicine.limit_reached" and "2 bought" in refused["error"]
    # the voided e-prescription is filled again, at another pharmacy, once more only
    there = ticket(miniapp, "alice", SHIJIE)
    refill = sell(miniapp, "carol", SHIJIE, there, "rx2", [{"drug": "amoxicillin", "qty": 2}], rx)
    assert refill.status == 201 and refill.json()["prescription"] == f"{filled['prescription']}.1"
    third = sell(miniapp, "grandpa", TAOZHOU, here, "rx3", [{"drug": "amoxicillin", "qty": 2}], rx).json()
    assert (third["code"], third["error"]) == (
        "medicine.prescription_filled",
        "this e-prescription was filled at shijie-1",
    )
    assert [
        r["pharmacy"] for r in miniapp.get("/purchases", user="alice").json()["prescriptions_filled"]
    ] == ["shijie-1"]
