"""The tourism app's gate rules through the real core (`yima dev` with the first-party apps, on a database of its
own) and gates run by the real terminal SDK: a ticket enters from 30 minutes before its slot until its end, an
offline scan judged at the time it was scanned; the Ankang code finds the ticket whose slot is open; a ticket
never charged is refused; a partner county's Ankang code is told to show the ticket pass, which admits."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from yima_sdk.codes import issue_ankang_code
from yima_sdk.cron import COUNTY_TIME
from yima_sdk.terminal import HttpTransport, Terminal, TerminalCredentials

from server.seed import DEMO_OPERATOR_PHONE
from tests.credentials.helpers import public_key_b64
from tests.e2e._real import (
    eventually,
    fresh_database,
    private_folder,
    real_server,
    server_env,
    sign_in,
    verified_resident,
)
from tests.e2e.test_real_tourism import (
    API,
    APP,
    Dev,
    live,
    pay,
    paying_resident,
    roots,
    scan_online,
    senior,
    shown,
    staff,
)

CHANGXING, KID = 330522, "0c0a0533"


@pytest.fixture(scope="module")
def dev() -> Iterator[tuple[Dev, str]]:
    with private_folder() as folder, fresh_database() as dsn:
        env = server_env(dsn, folder / "data", redis=False, YIMA_DEV_FIRST_PARTY="1")
        with real_server("dev", env=env) as server:
            watcher = verified_resident(server)
            eventually(lambda: watcher.get(f"{API}/spots").json().get("spots"), limit_s=60)  # seeded
            today = dt.datetime.now(COUNTY_TIME).date().isoformat()
            yield Dev(server, sign_in(server, DEMO_OPERATOR_PHONE), today), dsn


def hhmm(minutes_from_now: int) -> str:
    return (dt.datetime.now(COUNTY_TIME) + dt.timedelta(minutes=minutes_from_now)).strftime("%H:%M")


def slot(dev: Dev, spot: str, start: str, end: str) -> str:
    keeper = staff(dev, "spot_staff", f"spot:{spot}")
    body = {"spot": spot, "day": dev.today, "start": start, "end": end, "capacity": 10}
    r = keeper.post(f"{API}/staff/slots", json=body)
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


def reserve(visitor: httpx.Client, slot_id: str) -> dict[str, Any]:
    r = visitor.post(f"{API}/slots/{slot_id}/reserve")
    assert r.status_code in (200, 201), r.text
    return dict(r.json())


def gate(dev: Dev, unit: str, folder: Path, clock: Callable[[], float] = time.time) -> Terminal:
    """A scenic gate on the terminal SDK, synced (trust list, revocations, the server's time) by `clock`."""
    key = Ed25519PrivateKey.generate()
    body = {"name": "gate", "kind": "scenic", "scene": APP, "public_key": public_key_b64(key), "unit": unit}
    r = dev.operator.post("/v1/admin/terminals", json=body)
    assert r.status_code == 201, r.text
    terminal = Terminal(
        root_public_keys=roots(dev),
        db_path=str(folder / f"{uuid.uuid4().hex}.sqlite"),
        clock=clock,
        clock_source="ntp",
        transport=HttpTransport(dev.server.url, TerminalCredentials(r.json()["id"], key)),
    )
    terminal.refresh()
    return terminal


def entered(visitor: httpx.Client) -> dict[str, int]:
    return {t["start"]: t["entered"] for t in visitor.get(f"{API}/tickets").json()["tickets"]}


def query(dsn: str, sql: str, *args: Any) -> list[asyncpg.Record]:
    async def run() -> list[asyncpg.Record]:
        conn = await asyncpg.connect(dsn)
        try:
            return list(await conn.fetch(sql, *args))
        finally:
            await conn.close()

    return asyncio.run(run())


def test_a_ticket_enters_within_its_slots_hours_online_and_offline(dev: tuple[Dev, str]) -> None:
    d, dsn = dev
    county = dt.datetime.now(COUNTY_TIME)
    if not dt.time(0, 40) <= county.time() <= dt.time(22, 0):
        pytest.skip("the slots of this test need a county time between 00:40 and 22:00")
    whole_day = slot(d, "taiji-cave", "00:00", "23:59")  # 太极洞: no re-entry
    later = slot(d, "taiji-cave", hhmm(45), hhmm(105))  # opens in 15 minutes
    soon = slot(d, "taiji-cave", hhmm(10), hhmm(70))  # opened 20 minutes ago
    bureau = staff(d, "bureau", None)
    before = live(bureau, "taiji-cave")["admitted"]

    # one visitor holds the whole day's ticket and a later one: her Ankang code uses the one open now
    both, early, offline = senior(d), senior(d), senior(d)
    reserve(both, whole_day)
    start = reserve(both, later)["start"]
    with private_folder() as folder:
        online = gate(d, "spot:taiji-cave", folder)
        code = lambda who: who.get("/v1/me/codes/ankang").json()["payload"]  # noqa: E731
        first = scan_online(online, code(both))["miniapp"]
        assert (first["admit"], first["lines"][0]) == (True, "请入园 Welcome"), first
        assert entered(both) == {"00:00": 1, start: 0}
        again = scan_online(online, code(both))["miniapp"]  # in already; her later ticket is not for now
        assert again["admit"] is False and again["lines"][0].startswith("未到入园时间 Too early: "), again
        assert entered(both) == {"00:00": 1, start: 0}

        # the later ticket's pass, shown a quarter of an hour before its slot opens
        ticket = reserve(early, later)
        answer = scan_online(online, shown(ticket["pass"]["payload"]))["miniapp"]
        hours = f"{ticket['start']}-{ticket['end']}"
        assert (answer["admit"], answer["lines"]) == (
            False,
            [f"未到入园时间 Too early: {hours}", "太极洞 Taiji Cave"],
        )

        # an offline gate scanned a pass 25 minutes ago, before its slot opened: judged at its scan time when
        # it is uploaded (refused, not counted), though now, within half an hour of the start, it enters
        ticket = reserve(offline, soon)
        shift = [0.0]
        behind = gate(d, "spot:taiji-cave", folder, clock=lambda: time.time() + shift[0])
        shift[0] = -25 * 60
        decision = behind.scan(shown(ticket["pass"]["payload"]))
        assert decision.result == "accept", decision
        assert behind.upload_pending() == 1 and behind.server_verdict(decision.record_id) == (
            "accepted",
            None,
        )

        def settled() -> list[dict[str, Any]]:
            rows = query(dsn, "SELECT body FROM miniapp_records WHERE app_id = $1 AND collection = 'entries'"
                         " AND body->>'ticket' = $2", APP, ticket["id"])  # fmt: skip
            return [json.loads(r["body"]) for r in rows]

        (entry,) = eventually(settled, limit_s=30)
        assert (entry["mode"], entry["answer"]["admit"]) == ("offline", False), entry
        assert entry["answer"]["lines"][0] == f"未到入园时间 Too early: {ticket['start']}-{ticket['end']}"
        assert entered(offline) == {ticket["start"]: 0}
        now = scan_online(online, shown(ticket["pass"]["payload"]))["miniapp"]
        assert (now["admit"], now["lines"][0]) == (True, "请入园 Welcome"), now
        for g in (online, behind):
            g.close()
    assert (
        live(bureau, "taiji-cave")["admitted"] == before + 2
    )  # the whole day's ticket and the one within its half hour


def test_a_ticket_never_charged_is_refused_until_it_is_paid(dev: tuple[Dev, str]) -> None:
    d, dsn = dev
    resident = paying_resident(d, 9000)
    whole_day = slot(d, "tianmu-lake", "00:00", "23:59")
    ticket = reserve(resident, whole_day)
    assert ticket["price_fen"] > 0 and ticket["payment_id"] is not None
    # the ticket as the reservation's first commit wrote it: a reservation stopped there (the core killed before
    # it charged) leaves it booked with no payment and no pass
    rows = query(dsn, "UPDATE miniapp_records SET body = body || '{\"payment_id\": null, \"pass\": null}',"
                 " version = version + 1 WHERE app_id = $1 AND collection = 'tickets' AND doc_id = $2"
                 " RETURNING doc_id", APP, ticket["id"])  # fmt: skip
    assert len(rows) == 1
    with private_folder() as folder:
        online = gate(d, "spot:tianmu-lake", folder)
        code = lambda: resident.get("/v1/me/codes/ankang").json()["payload"]  # noqa: E731
        answer = scan_online(online, code())["miniapp"]
        assert (answer["admit"], answer["lines"]) == (False, ["未付款 Not paid", "天目湖 Tianmu Lake"]), (
            answer
        )
        assert entered(resident)["00:00"] == 0
        again = reserve(resident, whole_day)  # asked again: charged now, and paid
        assert again["payment_id"] is not None and again["pass"] is not None, again
        pay(resident, again["payment_id"])
        answer = scan_online(online, code())["miniapp"]
        assert (answer["admit"], answer["lines"][0]) == (True, "请入园 Welcome"), answer
        online.close()


def test_a_partner_countys_ankang_code_is_told_to_show_the_ticket_pass(dev: tuple[Dev, str]) -> None:
    d, _ = dev
    changxing = Ed25519PrivateKey.generate()
    now = dt.datetime.now(dt.UTC)
    key = {"issuer": CHANGXING, "key_id": KID, "public_key": public_key_b64(changxing),
           "credential_types": ["ankang_code"],
           "not_before": (now - dt.timedelta(days=1)).isoformat(), "not_after": (now + dt.timedelta(days=2)).isoformat()}  # fmt: skip
    r = d.operator.post("/v1/admin/trust-list/partner-keys", json=key)
    assert r.status_code == 201, r.text
    visitor = senior(d)  # a Changxing resident with an account here, who bought a ticket in 一码旅游
    ticket = reserve(visitor, slot(d, "jishan-bamboo", "00:00", "23:59"))
    with private_folder() as folder:
        online = gate(d, "spot:jishan-bamboo", folder)
        code = issue_ankang_code(
            changxing, bytes.fromhex(KID), CHANGXING, os.urandom(16), "green", int(time.time())
        )
        answer = scan_online(online, code)
        assert answer["result"] == "accept", answer
        assert (answer["miniapp"]["admit"], answer["miniapp"]["lines"]) == (
            False,
            ["请出示门票码 Show your ticket pass", "外地安康码 Partner county code"],
        ), answer
        answer = scan_online(online, shown(ticket["pass"]["payload"]))["miniapp"]
        assert (answer["admit"], answer["lines"][0]) == (True, "请入园 Welcome"), answer
        online.close()
