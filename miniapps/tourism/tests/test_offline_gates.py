"""Offline gates against the simulator: a paid ticket or route pass is held at its spots' gates (the platform's
terminal lists), bound to the visitor and the pass; a gate on the terminal SDK with no connection admits the
holder's Ankang code once (twice where the spot re-admits), a group at once, a route pass at each of its spots,
refuses a code without a ticket for today, a ticket cancelled before its sync and one whose slot is over; the scans
settle once later."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import pytest
from yima_sdk import contract as c
from yima_sdk.cron import COUNTY_TIME
from yima_sdk.terminal import Terminal
from yima_sdk.testing import MiniApp

TAIJI, JISHAN = "spot:taiji-cave", "spot:jishan-bamboo"


def seeded(miniapp: MiniApp) -> str:
    miniapp.schedule_job("seed", key="yima-dev-seed")
    assert [run.ok for run in miniapp.advance(seconds=1) if run.name == "seed"] == [True]
    return dt.datetime.fromtimestamp(miniapp.now, COUNTY_TIME).date().isoformat()


def all_day_slot(miniapp: MiniApp, spot: str, day: str, capacity: int) -> str:
    miniapp.grant_staff("carol", "spot_staff", f"spot:{spot}")
    body = {"spot": spot, "day": day, "start": "00:00", "end": "23:59", "capacity": capacity}
    r = miniapp.post("/staff/slots", user="carol", json=body)
    assert r.status == 201, r.json()
    return str(r.json()["id"])


class Gates:
    """Gate terminals of the simulator's spots, each its own SQLite file, synced only when told."""

    def __init__(self, miniapp: MiniApp, folder: Path) -> None:
        self.miniapp, self.folder = miniapp, folder
        self.open: list[Terminal] = []

    def gate(self, unit: str) -> Terminal:
        credentials = self.miniapp.platform.credentials
        terminal = Terminal(
            root_public_keys=credentials.root_public_keys,
            db_path=str(self.folder / f"gate-{len(self.open)}.sqlite"),
            clock=lambda: self.miniapp.now,
            clock_source="ntp",
        )
        terminal.load_trust_list(credentials.trust_list_envelope)
        self.open.append(terminal)
        self.sync(terminal, unit)
        return terminal

    def sync(self, terminal: Terminal, unit: str) -> None:
        terminal.load_lists(self.miniapp.platform.terminal_lists(unit))


@pytest.fixture
def gates(miniapp: MiniApp, tmp_path: Path) -> Iterator[Gates]:
    made = Gates(miniapp, tmp_path)
    yield made
    for terminal in made.open:
        terminal.close()


def test_an_offline_gate_admits_held_tickets_once_groups_at_once_and_nobody_else(
    miniapp: MiniApp, gates: Gates
) -> None:
    today = seeded(miniapp)
    taiji, jishan = (
        all_day_slot(miniapp, "taiji-cave", today, 20),
        all_day_slot(miniapp, "jishan-bamboo", today, 9),
    )
    miniapp.platform.balances["alice"] = 50_000
    group = miniapp.post(f"/slots/{taiji}/reserve", user="alice", json={"people": 3}).json()
    assert group.get("gates") is None  # not paid yet: not at the gates
    miniapp.confirm_payment(group["payment_id"])
    mine = miniapp.get("/tickets", user="alice").json()["tickets"]
    assert [(t["paid"], t["gates"]) for t in mine] == [(True, True)]  # paid since: now held at the gate
    senior = miniapp.post(f"/slots/{jishan}/reserve", user="grandpa").json()
    assert (senior["price_fen"], senior["gates"]) == (0, True)  # free: held at once

    gate = gates.gate(TAIJI)
    first = gate.admit(miniapp.ankang_code("alice"), "gate")
    assert (first.admit, first.people) == (True, 3)
    closes = dt.datetime.combine(dt.date.fromisoformat(today), dt.time(23, 59), COUNTY_TIME)
    assert first.entry is not None and first.entry.value == {
        "kind": "ticket", "from": today, "until": today, "people": 3, "reentry": False,
        "enter_until": int(closes.timestamp()),
    }  # fmt: skip
    miniapp.advance(seconds=90)  # her next code: 太极洞 admits a ticket once
    assert gate.admit(miniapp.ankang_code("alice"), "gate").reason == "list.used_up"
    assert gate.admit(miniapp.ankang_code("grandpa"), "gate").reason == "list.no_entry"  # his is for 笄山竹海
    assert gate.admit(miniapp.ankang_code("carol"), "gate").reason == "list.no_entry"  # no ticket at all

    bamboo = gates.gate(JISHAN)  # 笄山竹海 re-admits the same day
    for _ in range(2):
        miniapp.advance(seconds=90)
        assert bamboo.admit(miniapp.ankang_code("grandpa"), "gate").admit is True
    assert bamboo.admit(senior["pass"]["payload"], "gate").admit is True  # his pass finds the same entry

    # the gates' scans, uploaded later, settle once each: the group counts three, the ticket one entry
    for _ in range(2):
        assert miniapp.scan("scenic", user="alice", unit=TAIJI, mode="offline") == []
    assert miniapp.get("/tickets", user="alice").json()["tickets"][0]["entered"] == 1
    assert miniapp.counters[f"admitted:taiji-cave.{today}"] == 3


def test_a_ticket_cancelled_before_the_sync_is_refused_and_a_route_pass_opens_each_spot(
    miniapp: MiniApp, gates: Gates
) -> None:
    today = seeded(miniapp)
    tomorrow = (dt.date.fromisoformat(today) + dt.timedelta(days=1)).isoformat()
    kept = miniapp.post(f"/slots/taiji-cave.{tomorrow}.09/reserve", user="grandpa").json()
    cancelled = miniapp.post(f"/slots/taiji-cave.{tomorrow}.13/reserve", user="grandpa")
    assert cancelled.status == 201 and cancelled.json()["gates"] is True
    stale = gates.gate(TAIJI)  # synced before the cancel, then cut off
    assert miniapp.delete(f"/tickets/{cancelled.json()['id']}", user="grandpa").status == 200
    fresh = gates.gate(TAIJI)  # synced after it
    at = dt.datetime.combine(dt.date.fromisoformat(tomorrow), dt.time(13, 5), COUNTY_TIME)
    miniapp.advance(seconds=at.timestamp() - miniapp.now)  # tomorrow 13:05, both gates offline
    payload = cancelled.json()["pass"]["payload"]
    assert fresh.admit(payload, "gate").reason == "list.no_entry"
    assert stale.admit(payload, "gate").admit is True  # what a gate that never synced the drop would do
    assert (
        fresh.admit(kept["pass"]["payload"], "gate").reason == "list.closed"
    )  # its 09:00-12:00 slot is over

    miniapp.platform.balances["alice"] = 50_000
    order = miniapp.post("/packages/holiday/buy", user="alice", json={"day": tomorrow}).json()
    miniapp.confirm_payment(order["payment_id"])
    assert miniapp.get("/tickets", user="alice").json()["orders"][0]["gates"] is True
    for unit in ("spot:tianmu-lake", "spot:tianhuangping"):
        admitted = gates.gate(unit).admit(miniapp.ankang_code("alice"), "gate")
        assert admitted.admit and admitted.entry is not None and admitted.entry.key.startswith("route.")
    outside = gates.gate("spot:shanjuan-cave").admit(miniapp.ankang_code("alice"), "gate")
    assert outside.reason == "list.no_entry"  # 善卷洞 is not on the route


def test_a_ticket_cancelled_while_it_is_held_for_the_gates_is_not_admitted_offline(
    miniapp: MiniApp, gates: Gates
) -> None:
    today = seeded(miniapp)
    slot = all_day_slot(miniapp, "taiji-cave", today, 20)
    miniapp.platform.balances["alice"] = 50_000
    ticket = miniapp.post(f"/slots/{slot}/reserve", user="alice").json()
    miniapp.confirm_payment(ticket["payment_id"])
    lists, db = miniapp.platform.lists, miniapp.platform.db
    hold = lists.hold

    def cancelled_first(op: c.TerminalsHold) -> c.HeldEntry:
        """The visitor's cancel commits (finding nothing to drop yet) between the ticket's read and its hold."""
        lists.hold = hold  # type: ignore[method-assign]
        record = db.handle(c.DbGet(collection="tickets", id=ticket["id"]))
        cancelled = {**record.value, "status": "cancelled", "refunded_fen": record.value["price_fen"]}
        db.handle(
            c.DbUpdate(
                collection="tickets", id=ticket["id"], value=cancelled, expected_version=record.version
            )
        )
        return hold(op)

    lists.hold = cancelled_first  # type: ignore[method-assign]
    assert miniapp.get("/tickets", user="alice").status == 200  # holds it, and reads it cancelled since
    mine = miniapp.get("/tickets", user="alice").json()["tickets"]
    assert [(t["status"], t.get("gates")) for t in mine] == [("cancelled", None)]
    gate = gates.gate(TAIJI)
    assert gate.admit(miniapp.ankang_code("alice"), "gate").reason == "list.no_entry"
    assert gate.admit(ticket["pass"]["payload"], "gate").reason == "list.no_entry"


def test_a_paid_ticket_a_full_gate_list_refuses_is_decided_online(miniapp: MiniApp, gates: Gates) -> None:
    today = seeded(miniapp)
    slot = all_day_slot(miniapp, "taiji-cave", today, 20)
    miniapp.platform.lists.quota = 0  # the spot's gate list is full
    miniapp.platform.balances["alice"] = 50_000
    ticket = miniapp.post(f"/slots/{slot}/reserve", user="alice").json()
    miniapp.confirm_payment(ticket["payment_id"])
    r = miniapp.get("/tickets", user="alice")
    assert r.status == 200, r.json()
    assert [(t["status"], t.get("gates")) for t in r.json()["tickets"]] == [("booked", None)]
    order = miniapp.post("/packages/holiday/buy", user="alice", json={"day": today})
    assert order.status == 201, order.json()
    assert gates.gate(TAIJI).admit(miniapp.ankang_code("alice"), "gate").reason == "list.no_entry"
    assert "请入园 Welcome" in miniapp.scan("scenic", user="alice", unit=TAIJI)  # online, the gate admits her
    assert miniapp.get("/tickets", user="alice").json()["tickets"][0]["entered"] == 1


def test_an_offline_scan_the_gate_refused_does_not_consume_the_ticket(miniapp: MiniApp, gates: Gates) -> None:
    today = seeded(miniapp)
    slot = all_day_slot(miniapp, "taiji-cave", today, 20)
    miniapp.platform.balances["alice"] = 50_000
    ticket = miniapp.post(f"/slots/{slot}/reserve", user="alice").json()
    gate = gates.gate(TAIJI)  # synced before she pays: it holds nothing for her
    miniapp.confirm_payment(ticket["payment_id"])
    refused = gate.admit(miniapp.ankang_code("alice"), "gate")
    assert (refused.admit, refused.reason) == (False, "list.no_entry")

    # its upload carries the gate's verdict: settled as a refused entry, once, however often delivered
    for _ in range(2):
        assert miniapp.scan("scenic", user="alice", unit=TAIJI, mode="offline", terminal_admitted=False,
                            terminal_reason="list.no_entry", scan_id=None if _ == 0 else "sim-scan-1") == []  # fmt: skip
    assert miniapp.get("/tickets", user="alice").json()["tickets"][0]["entered"] == 0
    assert miniapp.counters.get(f"admitted:taiji-cave.{today}", 0) == 0
    assert "请入园 Welcome" in miniapp.scan("scenic", user="alice", unit=TAIJI)  # online, the gate admits her
    assert miniapp.get("/tickets", user="alice").json()["tickets"][0]["entered"] == 1
