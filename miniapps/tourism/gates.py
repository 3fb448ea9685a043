"""Gates: the gate keeper checks a pass; the gate terminal scans a pass or the Ankang code, online or offline,
and each scan settles exactly once."""

from __future__ import annotations

import datetime as dt
from typing import Any

import msgspec
from common import APP, app, at_time, county_now, problem
from yima_sdk import Context, Request, Response, ScanEvent, VersionConflict
from yima_sdk.cron import COUNTY_TIME

GRACE = dt.timedelta(minutes=30)
"""A ticket's first entry is from `GRACE` before its slot starts until the slot ends (the slot's places are its
arrivals); once in, a re-entry where the spot allows it is good the rest of the day."""
GUANGDE = 341822
"""The issuer of Guangde's own Ankang codes: a partner county's code names no one on this platform."""


class Check(msgspec.Struct, forbid_unknown_fields=True):
    spot: str
    payload: str
    check_id: str
    """The gate's own id of this check (a retry sends the same one and gets the same answer)."""


@app.post("/gate/check")
async def gate_check(ctx: Context, request: Request) -> Response:
    """A gate keeper of `spot` checks a ticket or route pass (scanned with the gate's reader)."""
    body = request.json(Check)
    if not (await ctx.user.staff()).has("gate_keeper", f"spot:{body.spot}"):
        return problem(403, "tourism.other_spot", "you keep the gates of another spot")
    verdict = await ctx.credentials.verify(body.payload)
    if not verdict.valid or verdict.kind != "app_pass" or verdict.issuer_app != APP:
        reason = verdict.reason or "credential.not_a_ticket"
        return Response.json({"admit": False, "people": 0, "lines": ["无效票 Not a valid ticket", reason]})
    holding = await _holding_of_pass(ctx, verdict.data)
    if holding is None:
        return Response.json({"admit": False, "people": 0, "lines": ["无此票 No such ticket"]})
    answer = await admit(
        ctx, holding, body.spot, county_now(request), f"check.{body.spot}.{body.check_id}", "online"
    )
    return Response.json(answer)


async def _holding_of_pass(ctx: Context, data: dict[str, Any]) -> tuple[str, Any] | None:
    if data.get("k") == "ticket":
        page = await ctx.db.find("tickets", {"slot": str(data.get("slot")), "number": data.get("n")}, limit=1)
        return ("tickets", page.items[0]) if page.items else None
    if data.get("k") == "route":
        page = await ctx.db.find("orders", {"number": data.get("n")}, limit=1)
        return ("orders", page.items[0]) if page.items else None
    return None


@app.on_scan("scenic")
async def gate_scan(ctx: Context, event: ScanEvent) -> dict[str, Any] | None:
    """The gate terminal of a spot (its unit `spot:<id>`) scanned a ticket or route pass, or an Ankang code (the
    holder's ticket of the day whose entry hours are on, or route pass, admits them; a partner county's code
    names no one here: the visitor shows the pass). Offline scans uploaded later settle the same way, judged at
    their scan time, once per scan; two gates that both let the same ticket in offline count it once (the second
    is recorded as already entered). An offline scan the gate itself refused by its synced lists
    (`terminal_admitted` False: the visitor did not go through, e.g. a ticket paid after the gate's last sync)
    settles as a refused entry: nothing counted, the ticket not entered. The reply's `admit` is the gate's
    verdict."""
    at = (event.data.scanned_at or dt.datetime.now(dt.UTC)).astimezone(COUNTY_TIME)
    unit = event.data.unit or ""
    if not unit.startswith("spot:"):
        return {"lines": ["闸机未绑定景区 Gate serves no spot"], "admit": False}
    spot = unit.removeprefix("spot:")
    key = f"scan.{event.data.scan_id}"
    # an offline gate that refused the scan by its lists: settled as it decided (recorded, nothing admitted)
    gate_refused = event.data.mode == "offline" and event.data.terminal_admitted is False
    scanned = event.data.app_pass
    if scanned is not None:
        holding = await _holding_of_pass(ctx, scanned.data) if scanned.app == APP else None
        if holding is None:
            answer = {"admit": False, "lines": ["无此票 No such ticket"]}
        else:
            answer = await admit(ctx, holding, spot, at, key, event.data.mode, gate_refused)
    elif event.user_id is None and event.data.issuer not in (None, GUANGDE):
        # a partner county's Ankang code: its holder's ticket cannot be looked up by it, the pass admits
        answer = {
            "admit": False,
            "lines": ["请出示门票码 Show your ticket pass", "外地安康码 Partner county code"],
        }
    elif event.user_id is None:
        answer = {"admit": False, "lines": ["未购票 No ticket in 一码旅游"]}
    else:
        found = await _holding_of_visitor(ctx, event.user_id, spot, at)
        if found is None:
            answer = {"admit": False, "lines": ["今日无票 No ticket for today"]}
        else:
            answer = await admit(ctx, found, spot, at, key, event.data.mode, gate_refused)
    if event.data.mode == "offline":
        await ctx.log.info("offline gate scan settled", spot=spot, admit=str(answer["admit"]))
        return None
    return {"lines": answer["lines"], "admit": answer["admit"]}


async def _holding_of_visitor(
    ctx: Context, user_id: str, spot: str, at: dt.datetime
) -> tuple[str, Any] | None:
    """The visitor's ticket of the day at `spot` that the scan at `at` is about (see `_fitness`), or else a route
    pass that includes the spot."""
    day = at.date().isoformat()
    tickets = await ctx.db.find("tickets", {"user_id": user_id, "day": day}, limit=50)
    mine = [r for r in tickets.items if r.value["spot"] == spot and r.value["status"] == "booked"]
    if mine:
        place = await ctx.db.get("spots", spot)
        reentry = bool(place and place.value["reentry"])
        return "tickets", min(mine, key=lambda r: _fitness(r.value, at, reentry))
    orders = await ctx.db.find("orders", {"user_id": user_id}, limit=50)
    for record in orders.items:
        o = record.value
        if spot in o["spots"] and o["from"] <= day <= o["until"] and o["status"] == "booked":
            return "orders", record
    return None


async def admit(ctx: Context, holding: tuple[str, Any], spot_id: str, at: dt.datetime, key: str,
                mode: str, gate_refused: bool = False) -> dict[str, Any]:  # fmt: skip
    """Admit the holder of a ticket or route pass at `spot_id`, once per ticket (again the same day where the
    spot allows re-entry); the entry record (id `key`, the scan) and the count are one commit with the ticket,
    so the same scan settles once and two gates never both admit a first entry. `gate_refused`: an offline scan
    its gate refused by its lists, recorded (the scan settles once) as a refused entry."""
    collection, record = holding
    day = at.date().isoformat()
    for _ in range(5):
        settled = await ctx.db.get("entries", key)
        if settled is not None:
            return settled.value["answer"]  # type: ignore[no-any-return]
        value = record.value
        spot = await ctx.db.get("spots", spot_id)
        if spot is None:
            return {"admit": False, "people": 0, "lines": ["无此景区 No such spot"]}
        refusal = (
            "闸机未放行 Refused at the gate"
            if gate_refused
            else await _refusal(ctx, collection, value, spot_id, at)
        )
        entered = value["entered"] if collection == "tickets" else value["entered"].get(spot_id, 0)
        if refusal is None and entered:
            refusal = _no_reentry(collection, value, spot_id, spot.value["reentry"], day)
        people = value.get("people", 1)
        name = spot.value["name"]
        if refusal is not None:
            answer = {"admit": False, "people": 0, "lines": [refusal, name]}
        elif entered:
            answer = {
                "admit": True,
                "people": people,
                "lines": ["再次入园 Re-entry", name, f"{people} 人 people"],
            }
        else:
            answer = {
                "admit": True,
                "people": people,
                "lines": ["请入园 Welcome", name, f"{people} 人 people"],
            }
        if refusal is not None and mode == "online":
            return answer  # nothing to settle: a refused online scan changes nothing
        new = dict(value)
        if answer["admit"]:
            if collection == "tickets":
                new["entered"] = entered + 1
            else:
                new["entered"] = {**value["entered"], spot_id: entered + 1}
                if not entered:  # the day of its visit there: re-entry (where allowed) only that day
                    new["entered_on"] = {**value.get("entered_on", {}), spot_id: day}
            new["paid"] = True
        entry = {"spot": spot_id, "day": day, "ticket": record.id, "kind": collection, "mode": mode,
                 "at": int(at.timestamp()), "answer": answer}  # fmt: skip
        try:
            async with ctx.db.transaction() as tx:
                tx.insert("entries", entry, id=key)
                if answer["admit"]:
                    tx.update(collection, record.id, new, expected_version=record.version)
                    if not entered:
                        tx.counter_add(f"admitted:{spot_id}.{day}", people)
        except VersionConflict:  # this scan settled meanwhile, or the ticket changed: read both again
            fresh = await ctx.db.get(collection, record.id)
            if fresh is None:
                break
            record = fresh
            continue
        return answer
    return {"admit": False, "people": 0, "lines": ["请重试 Try again"]}


def _fitness(ticket: dict[str, Any], at: dt.datetime, reentry: bool) -> tuple[int, float]:
    """How well a ticket of the day fits a scan at `at`, lowest first: one whose slot is open for entry now, then
    one entered before that may re-enter, then the next slot to open (the gate says when), then one entered
    before (already entered), then a slot that is over."""
    opens, closes = _entry_window(ticket)
    if ticket["entered"]:
        return (1, 0) if reentry else (3, 0)
    if opens <= at <= closes:
        return 0, opens.timestamp()
    if at < opens:
        return 2, opens.timestamp()
    return 4, -closes.timestamp()


def _entry_window(ticket: dict[str, Any]) -> tuple[dt.datetime, dt.datetime]:
    """When a ticket first enters: from `GRACE` before its slot starts until the slot ends (county time)."""
    return at_time(ticket["day"], ticket["start"]) - GRACE, at_time(ticket["day"], ticket["end"])


def _no_reentry(collection: str, value: dict[str, Any], spot_id: str, reentry: bool, day: str) -> str | None:
    """Why a holder who entered `spot_id` before is not let in again `day`, or None. A ticket is for one day; a
    route pass, good for several, visits each spot once: again only the day it first entered, where the spot
    allows re-entry."""
    if not reentry:
        return "已入园 Already entered"
    first = value.get("entered_on", {}).get(spot_id) if collection == "orders" else day
    if first != day:
        return f"已于 {first} 入园 Visited on {first}" if first else "已入园 Already entered"
    return None


async def _refusal(
    ctx: Context, collection: str, value: dict[str, Any], spot_id: str, at: dt.datetime
) -> str | None:
    """Why the holder is not let in at `spot_id` at `at` (an offline scan: when it was scanned), or None."""
    day = at.date().isoformat()
    if value["status"] != "booked":
        return "票已取消 Ticket cancelled"
    if collection == "tickets":
        if value["spot"] != spot_id:
            return "非本景区门票 Ticket of another spot"
        if value["day"] != day:
            return f"门票日期 {value['day']} Ticket for another day"
        opens, closes = _entry_window(value)
        hours = f"{value['start']}-{value['end']}"
        if not value["entered"] and at < opens:
            return f"未到入园时间 Too early: {hours}"
        if not value["entered"] and at > closes:
            return f"已过入园时间 Too late: {hours}"
    else:
        if spot_id not in value["spots"]:
            return "线路不含本景区 Route does not include this spot"
        if not value["from"] <= day <= value["until"]:
            return "线路票不在有效期 Route pass not valid today"
    if value["price_fen"] > 0 and not value.get("paid"):
        # unpaid until its payment succeeded: a ticket never charged (its reservation stopped between writing
        # the ticket and charging it) has no payment at all
        payment_id = value.get("payment_id")
        if payment_id is None or (await ctx.payments.status(payment_id)).status != "succeeded":
            return "未付款 Not paid"
    return None
