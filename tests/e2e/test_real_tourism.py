"""The tourism app (miniapps/tourism) through the real core: `yima dev` seeds it, many visitors reserve one
slot at once (exactly its capacity), seniors enter free by their consented birth date, a gate keeper checks a
ticket pass and a real gate terminal scans Ankang codes online and offline (an upload sent twice settles once),
and the bureau sees the live count."""

from __future__ import annotations

import base64
import datetime as dt
import io
import json
import secrets
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import qrcode
import qrcode.constants
import zxingcpp
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from PIL import Image
from yima_sdk.cron import COUNTY_TIME
from yima_sdk.passes import open_pass
from yima_sdk.terminal import HttpTransport, Terminal, TerminalCredentials

from server.seed import DEMO_OPERATOR_PHONE, DEMO_RESIDENT_PHONE
from tests.credentials.helpers import public_key_b64, valid_id_number
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
    yield from running_dev()


def running_dev() -> Iterator[Dev]:
    """`yima dev` with the first-party apps, once the tourism app's demo data is in (each module its own)."""
    with private_folder() as folder:
        # many visitors sign in from this one address: more than the per-address OTP limit lets through
        env = server_env(
            "", folder / "data", redis=False, YIMA_DEV_FIRST_PARTY="1", YIMA_OTP_PER_ADDRESS_PER_HOUR="1000"
        )
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


# ---- ticket passes at real gate terminals (yima_sdk.terminal), online and offline ---------------------------


def paying_resident(dev: Dev, fen: int) -> httpx.Client:
    """The demo resident (her one-card is open), topped up with `fen` at the payment simulator's cashier."""
    resident = sign_in(dev.server, DEMO_RESIDENT_PHONE)
    r = resident.post(
        "/v1/me/onecard/topups", json={"amount_fen": fen}, headers={"Idempotency-Key": secrets.token_hex(8)}
    )
    assert r.status_code == 201, r.text
    order = r.json()
    cashier = resident.get(httpx.URL(order["pay_url"]).path).json()
    assert resident.post(httpx.URL(cashier["pay"]).path).status_code == 200
    eventually(lambda: resident.get(f"/v1/me/onecard/topups/{order['order_no']}").json()["credited"])
    return resident


def pay(resident: httpx.Client, payment_id: str) -> None:
    r = resident.post(f"/v1/me/payments/{payment_id.removeprefix('pay_')}/confirm")
    assert r.status_code == 200 and r.json()["status"] == "succeeded", r.text


def roots(dev: Dev) -> dict[str, bytes]:
    info = httpx.get(f"{dev.server.url}/v1/trust-list/info").json()
    return {kid: base64.urlsafe_b64decode(k + "==") for kid, k in info["root_public_keys"].items()}


def gate_terminal(dev: Dev, unit: str, folder: Path, db: Path | None = None) -> Terminal:
    """A scenic gate registered by the operator for `unit`, run by the real terminal SDK (its own key, its
    SQLite file `db`, the pinned roots), with the trust list, the revocation lists and the server's time synced."""
    key = Ed25519PrivateKey.generate()
    body = {"name": "gate", "kind": "scenic", "scene": APP, "public_key": public_key_b64(key), "unit": unit}
    r = dev.operator.post("/v1/admin/terminals", json=body)
    assert r.status_code == 201, r.text
    terminal = Terminal(
        root_public_keys=roots(dev),
        db_path=str(db or folder / f"{uuid.uuid4().hex}.sqlite"),
        clock=time.time,
        clock_source="ntp",
        transport=HttpTransport(dev.server.url, TerminalCredentials(r.json()["id"], key)),
    )
    terminal.refresh()
    return terminal


def shown(payload: str) -> str:
    """What a gate's camera reads off the pass's QR code on the phone: rendered as a PNG (byte mode, error
    correction M), then decoded from the image."""
    qr = qrcode.QRCode(error_correction=qrcode.constants.ERROR_CORRECT_M, box_size=4)
    qr.add_data(payload)
    png = io.BytesIO()
    qr.make_image().save(png)
    image = Image.open(io.BytesIO(png.getvalue()))
    # a gate's reader looks for QR codes only, as the other code tests read them: looking for every format, the
    # decoder once reported two symbols in one pass's image (a full-suite run at f86c44e)
    (found,) = zxingcpp.read_barcodes(image, formats=zxingcpp.BarcodeFormat.QRCode)
    return str(found.text)


def scan_online(gate: Terminal, payload: str) -> dict[str, Any]:
    assert isinstance(gate._transport, HttpTransport)
    return dict(json.loads(gate._transport.scan_online(payload, int(time.time() * 1000))))


def test_gates_scan_ticket_passes_online_and_offline_and_count_each_ticket_once(dev: Dev) -> None:
    slot = all_day_slot(dev, "shanjuan-cave", 20)  # no re-entry at 善卷洞
    group, solo = paying_resident(dev, 3 * 7000), senior(dev)
    r = group.post(f"{API}/slots/{slot}/reserve", json={"people": 3})
    assert r.status_code == 201, r.text
    ticket = r.json()
    pay(group, ticket["payment_id"])
    r = solo.post(f"{API}/slots/{slot}/reserve")
    assert r.status_code == 201 and r.json()["price_fen"] == 0, r.text
    second = r.json()
    bureau = staff(dev, "bureau", None)
    before = live(bureau, "shanjuan-cave")["admitted"]

    # the pass names no one: the number of its ticket, for how many, and nothing of the visitor
    claims, _, _ = open_pass(ticket["pass"]["payload"])
    assert claims.s is None and set(claims.d) == {"k", "slot", "n", "people"} and claims.d["people"] == 3

    with private_folder() as folder:
        gate = gate_terminal(dev, "spot:shanjuan-cave", folder)
        payload = shown(ticket["pass"]["payload"])
        answer = scan_online(gate, payload)
        assert answer["result"] == "accept" and answer["credential_type"] == "app_pass", answer
        assert answer["miniapp"]["admit"] is True, answer
        assert answer["miniapp"]["lines"] == ["请入园 Welcome", "善卷洞 Shanjuan Cave", "3 人 people"]
        again = scan_online(gate, payload)
        assert again["miniapp"]["admit"] is False and again["miniapp"]["lines"][0] == "已入园 Already entered"
        elsewhere = gate_terminal(dev, "spot:xianshan-lake", folder)
        answer = scan_online(elsewhere, payload)
        assert answer["miniapp"]["admit"] is False, answer
        assert answer["miniapp"]["lines"][0] == "非本景区门票 Ticket of another spot"
        eventually(lambda: live(bureau, "shanjuan-cave")["admitted"] == before + 3, limit_s=20)

        # two gates without a connection both let the second ticket in; their uploads race
        east, west = (gate_terminal(dev, "spot:shanjuan-cave", folder) for _ in range(2))
        payload = shown(second["pass"]["payload"])
        decisions = [g.scan(payload) for g in (east, west)]
        assert [(d.result, d.code.kind if d.code else None) for d in decisions] == [
            ("accept", "app_pass")
        ] * 2
        assert decisions[0].code is not None and decisions[0].code.app_pass is not None
        assert decisions[0].code.app_pass.d["people"] == 1
        forged = payload[:-6] + ("AAAAAA" if not payload.endswith("AAAAAA") else "BBBBBB")
        assert east.scan(forged).reason == "credential.bad_signature"
        with ThreadPoolExecutor(2) as pool:
            assert list(pool.map(lambda g: g.upload_pending(), (east, west))) == [2, 1]
        assert east.server_verdict(decisions[0].record_id) == ("accepted", None)
        assert west.server_verdict(decisions[1].record_id) == ("accepted", None)
        for g in (east, west):
            assert g.upload_pending() == 0  # uploaded once; sent again it settles nothing more

        def entered_once() -> bool:
            return bool(solo.get(f"{API}/tickets").json()["tickets"][0]["entered"] == 1)

        eventually(entered_once, limit_s=20)
        eventually(lambda: live(bureau, "shanjuan-cave")["admitted"] == before + 4, limit_s=20)
        answer = scan_online(gate, payload)
        assert answer["miniapp"]["lines"][0] == "已入园 Already entered", answer
        assert live(bureau, "shanjuan-cave")["admitted"] == before + 4
        for g in (gate, elsewhere, east, west):
            g.close()


def test_a_gate_that_shows_names_names_the_code_holder_but_never_the_pass_holder(dev: Dev) -> None:
    """A county may have its gates show the masked name (the scene's policy): scanning the visitor's Ankang code
    names her; scanning her ticket pass does not, since sharing a pass is not consent to be named to staff."""
    slot = all_day_slot(dev, "tianhuangping", 5)
    visitor = senior(dev)  # 王大爷: "王**" once masked
    r = visitor.post(f"{API}/slots/{slot}/reserve")
    assert r.status_code == 201, r.text
    ticket = r.json()
    policy = {
        "allowed_colours": ["green"],
        "show_name": True,
        "replay": "per_terminal",
        "accept_ride_codes": False,
    }
    r = dev.operator.put(f"/v1/admin/scene-policies/scenic?scene={APP}", json=policy)
    assert r.status_code == 200, r.text
    try:
        with private_folder() as folder:
            gate = gate_terminal(dev, "spot:tianhuangping", folder)
            answer = scan_online(gate, shown(ticket["pass"]["payload"]))
            assert (answer["result"], answer["credential_type"]) == ("accept", "app_pass"), answer
            assert answer["miniapp"]["admit"] is True and "name" not in answer, answer
            answer = scan_online(gate, visitor.get("/v1/me/codes/ankang").json()["payload"])
            assert (answer["result"], answer["credential_type"]) == ("accept", "ankang_code"), answer
            assert answer["name"] == "王**", answer
            gate.close()
    finally:
        policy["show_name"] = False  # the scenic default again
        r = dev.operator.put(f"/v1/admin/scene-policies/scenic?scene={APP}", json=policy)
        assert r.status_code == 200, r.text


def test_partner_spots_honour_a_route_pass_and_a_cancelled_ticket_is_refused(dev: Dev) -> None:
    visitor = paying_resident(dev, 19800)
    r = visitor.post(f"{API}/packages/holiday/buy", json={"day": dev.today})
    assert r.status_code in (200, 201), r.text
    order = r.json()
    pay(visitor, order["payment_id"])
    payload = shown(order["pass"]["payload"])
    with private_folder() as folder:
        # 天目湖 (Liyang) and 天荒坪 (Anji) are on the holiday route; 善卷洞 (Yixing) is not
        for spot, name in (("tianmu-lake", "天目湖 Tianmu Lake"), ("tianhuangping", "天荒坪 Tianhuangping")):
            gate = gate_terminal(dev, f"spot:{spot}", folder)
            answer = scan_online(gate, payload)
            assert answer["miniapp"]["admit"] is True and answer["miniapp"]["lines"][1] == name, answer
            gate.close()
        gate = gate_terminal(dev, "spot:shanjuan-cave", folder)
        answer = scan_online(gate, payload)
        assert answer["miniapp"]["admit"] is False, answer
        assert answer["miniapp"]["lines"][0] == "线路不含本景区 Route does not include this spot"

        # a ticket cancelled (its pass revoked) is refused by the platform before the app sees it
        tomorrow = (dt.date.fromisoformat(dev.today) + dt.timedelta(days=1)).isoformat()
        r = visitor.post(f"{API}/slots/xianshan-lake.{tomorrow}.09/reserve")
        assert r.status_code == 201, r.text
        ticket = r.json()
        assert visitor.delete(f"{API}/tickets/{ticket['id']}").status_code == 200
        answer = scan_online(
            gate_terminal(dev, "spot:xianshan-lake", folder), shown(ticket["pass"]["payload"])
        )
        assert (answer["result"], answer["reason"]) == ("reject", "credential.revoked"), answer
        assert "miniapp" not in answer
        gate.close()


def test_an_offline_gate_refuses_a_cancelled_tickets_pass_after_its_refresh(dev: Dev) -> None:
    visitor = senior(dev)
    tomorrow = (dt.date.fromisoformat(dev.today) + dt.timedelta(days=1)).isoformat()
    r = visitor.post(f"{API}/slots/xianshan-lake.{tomorrow}.13/reserve")
    assert r.status_code == 201, r.text
    ticket = r.json()
    payload = shown(ticket["pass"]["payload"])
    with private_folder() as folder:
        db = folder / "gate.sqlite"
        gate = gate_terminal(dev, "spot:xianshan-lake", folder, db)  # synced while the ticket is good
        other = gate_terminal(dev, "spot:xianshan-lake", folder)
        before = other.scan(payload)  # offline, with the lists from before the cancel
        assert (before.result, before.reason) == ("accept", None)
        assert visitor.delete(f"{API}/tickets/{ticket['id']}").status_code == 200
        gate.refresh()  # the gate's periodic sync, still online
        gate.close()
        other.close()
        # the connection gone: the gate, opened on its file with no transport at all, decides alone
        offline = Terminal(root_public_keys=roots(dev), db_path=str(db), clock=time.time, clock_source="ntp")
        refused = offline.scan(payload)
        assert (refused.result, refused.reason) == ("reject", "credential.revoked")
        assert refused.code is None or refused.code.kind == "app_pass"
        offline.close()


def registered(dev: Dev, region: str, *, tells: bool) -> httpx.Client:
    """A visitor whose ID card was issued in `region`; `tells`: she lets the app ask whether she is registered in
    Guangde (a yes or no, in the phone's catalog)."""
    visitor = sign_in(dev.server)
    for _ in range(5):  # a random ID number may be taken already
        number = valid_id_number(region=region, birth="19900315", seq=f"{secrets.randbelow(1000):03d}")
        r = visitor.put("/v1/me/identity", json={"name": "李小红", "id_number": number})
        if r.status_code != 409:
            break
    assert r.status_code == 200, r.text
    if tells:
        r = visitor.put(f"/v1/me/consents/{APP}/registered_in:341822", json={"granted": True})
        assert r.status_code in (200, 201), r.text
    return visitor


def test_guangde_residents_pay_half_at_guangde_spots_only_with_their_consent(dev: Dev) -> None:
    entry = next(a for a in dev.operator.get("/v1/miniapps").json() if a["app_id"] == APP)
    asked = {s["name"]: s["purpose"] for s in entry["scopes"]}
    assert "never your address" in asked["registered_in:341822"], asked
    slot = all_day_slot(dev, "jishan-bamboo", 50)
    prices = []
    for region, tells in (("341822", True), ("341822", False), ("320481", True)):
        r = registered(dev, region, tells=tells).post(f"{API}/slots/{slot}/reserve")
        assert r.status_code == 201, r.text
        prices.append((r.json()["price_fen"], r.json()["concession"]))
    assert prices == [(2000, "local_resident"), (4000, None), (4000, None)]
    # at a partner county's spot a Guangde resident pays that spot's full price
    r = registered(dev, "341822", tells=True).post(
        f"{API}/slots/{all_day_slot(dev, 'xianshan-lake', 5)}/reserve"
    )
    assert (r.json()["price_fen"], r.json()["concession"]) == (5000, None), r.text
