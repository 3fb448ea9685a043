"""一码旅游 Tourism (gov.guangde.tourism): scenic spots of Guangde and of the partner counties of the 一地六县
alliance, daily time slots kept by each spot's staff, tickets bought with the one-card and held as passes, gates
that admit by the ticket pass or the Ankang code (online, or offline and settled later exactly once),
cross-county route packages, and reviews, on yima_sdk alone (docs/miniapps/tourism.md tells each flow).

Data (ctx.db collections, declared with their indexes in miniapp.toml):
    spots      name, county, price, whether a ticket re-enters the same day (`reentry`)
    slots      `<spot>.<day>.<hour>`: a time slot of a day with its capacity (in people)
    tickets    `<slot>.<visitor>`: one per visitor and slot, for `people` (a group ticket admits them all);
               status booked or cancelled; `entered` counts the entries
    packages   the cross-county routes; orders `<package>.<day>.<visitor>`: one route pass honoured once at
               each of the package's spots (`entered` per spot)
    entries    one per admission, id `<gate scan id>`: written in the commit that counts the entry, so a scan
               (an offline upload sent twice, a retried check) settles exactly once
    reviews    `<spot>.<visitor>`: stars and text of a visitor who entered the spot
Counters (storage): `taken:<slot>` (bounded by the capacity in the ticket's own commit: never more people
reserved than places, whatever the concurrency), `admitted:<spot>.<day>` (the live count), `numbers:<slot>` and
`orders` (the numbers on the passes), `stars:<spot>` and `reviews:<spot>`.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import msgspec
import seed
from yima_sdk import (
    App,
    ConsentDenied,
    Context,
    CounterOutOfRange,
    JobEvent,
    Request,
    Response,
    ScanEvent,
    VersionConflict,
)
from yima_sdk.cron import COUNTY_TIME

app = App()

APP = "gov.guangde.tourism"

WARN_AT = 0.75
"""The crowd-control rule: a spot whose count reaches 75% of the day's capacity is flagged to the bureau."""
MAX_GROUP = 30
LOCAL_SCOPES = {"guangde": "registered_in:341822"}
"""Where local residents pay half: the county of a spot -> the consent scope that says (yes or no only) whether
the visitor is registered there (its administrative division code; declared under [scopes])."""


class Reserve(msgspec.Struct, forbid_unknown_fields=True):
    people: int = 1
    """More than one: a group ticket at the full price of each, admitting them all at one scan."""


class NewSlot(msgspec.Struct, forbid_unknown_fields=True):
    spot: str
    day: dt.date
    start: str
    end: str
    capacity: int


class SlotChange(msgspec.Struct, forbid_unknown_fields=True):
    capacity: int | None = None
    status: str | None = None


class Check(msgspec.Struct, forbid_unknown_fields=True):
    spot: str
    payload: str
    check_id: str
    """The gate's own id of this check (a retry sends the same one and gets the same answer)."""


class Buy(msgspec.Struct, forbid_unknown_fields=True):
    day: dt.date


class Review(msgspec.Struct, forbid_unknown_fields=True):
    stars: int
    text: str = ""


def problem(status: int, code: str, message: str) -> Response:
    return Response.json({"code": code, "error": message}, status=status)


def county_now() -> dt.datetime:
    return dt.datetime.now(COUNTY_TIME)


def at_time(day: str, hhmm: str) -> dt.datetime:
    return dt.datetime.combine(dt.date.fromisoformat(day), dt.time.fromisoformat(hhmm), COUNTY_TIME)


def age_on(born: str, day: dt.date) -> int:
    birth = dt.date.fromisoformat(born)
    return day.year - birth.year - ((day.month, day.day) < (birth.month, birth.day))


def _doc(record: Any) -> dict[str, Any]:
    return {"id": record.id, **record.value}


# ---- visitors: spots, slots, reserving and paying, cancelling, the ticket pass ------------------------------


@app.get("/spots")
async def spots(ctx: Context, request: Request) -> dict[str, Any]:
    where = {"county": request.query["county"]} if request.query.get("county") else None
    found = await ctx.db.find("spots", where, limit=100)
    out = []
    for record in found.items:
        count = await ctx.storage.counter_get(f"reviews:{record.id}")
        stars = await ctx.storage.counter_get(f"stars:{record.id}")
        out.append({**_doc(record), "reviews": count, "rating": round(stars / count, 1) if count else None})
    return {"spots": out}


@app.get("/spots/{spot}/slots")
async def slots(ctx: Context, request: Request) -> Response:
    day = request.query.get("day") or county_now().date().isoformat()
    page = await ctx.db.find("slots", {"spot": request.path_params["spot"], "day": day}, order_by="start")
    out = []
    for record in page.items:
        if record.value["status"] != "open":
            continue
        taken = await ctx.storage.counter_get(f"taken:{record.id}")
        out.append({**_doc(record), "left": max(record.value["capacity"] - taken, 0)})
    return Response.json({"slots": out})


@app.post("/slots/{slot}/reserve")
async def reserve(ctx: Context, request: Request) -> Response:
    """A ticket of the slot for the caller (and their group): exactly `capacity` people reserved whatever the
    concurrency, since the bounded counter and the ticket are one commit. A retry answers the same ticket."""
    user_id = await ctx.user.id()
    if user_id is None:
        return problem(401, "tourism.sign_in", "sign in to reserve")
    body = request.json(Reserve) if request.body else Reserve()
    if not 1 <= body.people <= MAX_GROUP:
        return problem(400, "tourism.bad_group", f"a ticket is for 1 to {MAX_GROUP} people")
    slot = await ctx.db.get("slots", request.path_params["slot"])
    if slot is None or slot.value["status"] != "open":
        return problem(404, "tourism.no_such_slot", "no open slot with that id")
    s = slot.value
    if county_now() >= at_time(s["day"], s["end"]):
        return problem(409, "tourism.slot_over", "this slot is over")
    ticket_id = f"{slot.id}.{user_id}"
    existing = await ctx.db.get("tickets", ticket_id)
    if existing is not None and existing.value["status"] == "booked":
        value = existing.value
        if value["payment_id"] is not None and not value["paid"]:
            payment = await ctx.payments.status(value["payment_id"])
            if payment.status in ("declined", "failed"):  # asked again: a new charge for the same ticket
                value = {**value, "payment_id": None, "attempt": value.get("attempt", 0) + 1}
        return Response.json(await _paid_and_passed(ctx, existing.id, value), status=200)
    spot = await ctx.db.get("spots", s["spot"])
    if spot is None:
        return problem(404, "tourism.no_such_spot", "the slot's spot is gone")
    if await ctx.storage.counter_get(f"taken:{slot.id}") + body.people > s["capacity"]:
        return problem(409, "tourism.full", "not enough places left in this slot")
    number = await ctx.storage.counter_add(
        f"numbers:{slot.id}", 1
    )  # a lost race leaves a gap, never a repeat
    price, concession = await price_for(
        ctx, spot.value["price_fen"], body.people, dt.date.fromisoformat(s["day"]), spot.value["county"]
    )
    value = {
        "slot": slot.id, "spot": s["spot"], "spot_name": spot.value["name"], "day": s["day"], "start": s["start"],
        "end": s["end"], "user_id": user_id, "people": body.people, "number": number, "status": "booked",
        "price_fen": price, "concession": concession, "payment_id": None, "paid": price == 0, "pass": None,
        "entered": 0,
    }  # fmt: skip
    try:
        async with ctx.db.transaction() as tx:
            tx.counter_add(f"taken:{slot.id}", body.people, max=s["capacity"])
            if existing is None:
                tx.insert("tickets", value, id=ticket_id)
            else:
                tx.update("tickets", ticket_id, value, expected_version=existing.version)
    except CounterOutOfRange:
        return problem(409, "tourism.full", "not enough places left in this slot")
    except VersionConflict:  # the same ticket reserved twice at once: the other one won
        again = await ctx.db.get("tickets", ticket_id)
        if again is None or again.value["status"] != "booked":
            return problem(409, "tourism.changed", "the ticket changed meanwhile: try again")
        return Response.json(await _paid_and_passed(ctx, again.id, again.value), status=200)
    return Response.json(await _paid_and_passed(ctx, ticket_id, value), status=201)


async def price_for(
    ctx: Context, price: int, people: int, day: dt.date, county: str
) -> tuple[int, str | None]:
    """The full price for a group; for one visitor, the lowest of: by the consented birth date, 70 or more free
    and 60 or more half price; at Guangde's own spots, half price for a visitor registered in Guangde, asked as a
    yes or no (`registered_in:341822`), never where they live. A visitor who does not consent pays the full price."""
    if people > 1 or price == 0:
        return price * people, None
    try:
        age = age_on(await ctx.user.scope("birth_date"), day)
    except ConsentDenied:
        age = None
    if age is not None and age >= 70:
        return 0, "senior_free"
    if age is not None and age >= 60:
        return price // 2, "senior_half"
    if county in LOCAL_SCOPES:
        try:
            local = await ctx.user.scope(LOCAL_SCOPES[county]) == "true"
        except ConsentDenied:
            local = False
        if local:
            return price // 2, "local_resident"
    return price, None


async def _paid_and_passed(ctx: Context, ticket_id: str, value: dict[str, Any]) -> dict[str, Any]:
    """The ticket charged once (the key names the ticket and its number: a retry finds the same payment) and
    held as a pass valid until the end of its day."""
    changes: dict[str, Any] = {}
    if value["price_fen"] > 0 and value["payment_id"] is None:
        payment = await ctx.payments.charge(
            value["price_fen"],
            f"门票 {value['spot_name']}"[:100],
            idempotency_key=f"{ticket_id}.{value['number']}.{value.get('attempt', 0)}",
        )
        changes.update(payment_id=payment.id, attempt=value.get("attempt", 0))
    if value["pass"] is None:
        until = at_time(value["day"], "23:59")
        issued = await ctx.credentials.issue_pass(
            "ticket", {"k": "ticket", "slot": value["slot"], "n": value["number"], "people": value["people"]},
            int(until.timestamp()),
            user_id=value["user_id"],
        )  # fmt: skip
        changes["pass"] = {"id": issued.id, "payload": issued.payload, "valid_until": issued.valid_until}
    if changes:
        value = {**value, **changes}
        record = await ctx.db.get("tickets", ticket_id)
        if record is not None and record.value["number"] == value["number"]:
            try:
                await ctx.db.update("tickets", ticket_id, {**record.value, **changes},
                                    expected_version=record.version)  # fmt: skip
            except VersionConflict:
                pass  # changed meanwhile (a scan, a cancel): the next read finishes it with the same key
    return {"id": ticket_id, **value}


@app.get("/tickets")
async def my_tickets(ctx: Context, request: Request) -> dict[str, Any]:
    user_id = await ctx.user.id()
    page = await ctx.db.find("tickets", {"user_id": user_id}, order_by="day", limit=100)
    orders = await ctx.db.find("orders", {"user_id": user_id}, limit=100)
    return {"tickets": [_doc(r) for r in page.items], "orders": [_doc(r) for r in orders.items]}


@app.delete("/tickets/{ticket}")
async def cancel(ctx: Context, request: Request) -> Response:
    """Cancel before the slot starts: the places go back, the pass is revoked, the price is refunded."""
    record = await ctx.db.get("tickets", request.path_params["ticket"])
    if record is None or record.value["user_id"] != await ctx.user.id() or record.value["status"] != "booked":
        return problem(404, "tourism.no_such_ticket", "no open ticket of yours with that id")
    t = record.value
    if county_now() >= at_time(t["day"], t["start"]) or t["entered"]:
        return problem(409, "tourism.past_cutoff", "a ticket can be cancelled until its slot starts")
    try:
        async with ctx.db.transaction() as tx:
            tx.update("tickets", record.id, {**t, "status": "cancelled"}, expected_version=record.version)
            tx.counter_add(f"taken:{t['slot']}", -t["people"], min=0)
    except VersionConflict:
        return problem(409, "tourism.changed", "the ticket changed meanwhile: try again")
    if t["pass"]:
        await ctx.credentials.revoke_pass(t["pass"]["id"])
    refunded = 0
    if t["payment_id"] is not None:
        payment = await ctx.payments.status(t["payment_id"])
        if payment.status == "succeeded":
            done = await ctx.payments.refund(payment.id, payment.amount_fen, "退票 ticket cancelled",
                                             idempotency_key=f"cancel.{record.id}.{t['number']}")  # fmt: skip
            refunded = done.amount_fen
    return Response.json({"status": "cancelled", "refunded_fen": refunded})


# ---- cross-county route packages: one order, one pass honoured at each of the route's spots ----------------


@app.get("/packages")
async def packages(ctx: Context, request: Request) -> dict[str, Any]:
    found = await ctx.db.find("packages", limit=50)
    return {"packages": [_doc(r) for r in found.items]}


@app.post("/packages/{package}/buy")
async def buy_package(ctx: Context, request: Request) -> Response:
    user_id = await ctx.user.id()
    if user_id is None:
        return problem(401, "tourism.sign_in", "sign in to buy a route")
    body = request.json(Buy)
    package = await ctx.db.get("packages", request.path_params["package"])
    if package is None:
        return problem(404, "tourism.no_such_package", "no route package with that id")
    if body.day < county_now().date():
        return problem(409, "tourism.day_over", "choose today or a later day")
    p = package.value
    order_id = f"{package.id}.{body.day.isoformat()}.{user_id}"
    existing = await ctx.db.get("orders", order_id)
    if existing is None:
        number = await ctx.storage.counter_add("orders", 1)
        last = body.day + dt.timedelta(days=p["valid_days"] - 1)
        value = {
            "package": package.id, "name": p["name"], "spots": p["spots"], "user_id": user_id, "number": number,
            "from": body.day.isoformat(), "until": last.isoformat(), "price_fen": p["price_fen"],
            "payment_id": None, "pass": None, "entered": {}, "status": "booked",
        }  # fmt: skip
        try:
            await ctx.db.insert("orders", value, id=order_id)
        except VersionConflict:
            existing = await ctx.db.get("orders", order_id)
    changes: dict[str, Any] = {}
    if existing is not None:
        value = existing.value
        if value["payment_id"] is not None and not value.get("paid"):
            payment = await ctx.payments.status(value["payment_id"])
            if payment.status in ("declined", "failed"):  # asked again: a new charge for the same order
                value = {**value, "payment_id": None, "attempt": value.get("attempt", 0) + 1}
    if value["payment_id"] is None:
        key = f"order.{order_id}.{value['number']}.{value.get('attempt', 0)}"
        payment = await ctx.payments.charge(
            value["price_fen"], f"线路 {value['name']}"[:100], idempotency_key=key
        )
        changes.update(payment_id=payment.id, attempt=value.get("attempt", 0))
    if value["pass"] is None:
        until = at_time(value["until"], "23:59")
        issued = await ctx.credentials.issue_pass("route", {"k": "route", "n": value["number"]},
                                                  int(until.timestamp()))  # fmt: skip
        changes["pass"] = {"id": issued.id, "payload": issued.payload, "valid_until": issued.valid_until}
    if changes:
        value = {**value, **changes}
        record = await ctx.db.get("orders", order_id)
        if record is not None:
            try:
                await ctx.db.update(
                    "orders", order_id, {**record.value, **changes}, expected_version=record.version
                )
            except VersionConflict:
                pass
    return Response.json({"id": order_id, **value}, status=201 if existing is None else 200)


# ---- gates: the gate keeper checks a pass; the gate terminal scans the Ankang code ---------------------------


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
        ctx, holding, body.spot, county_now(), f"check.{body.spot}.{body.check_id}", "online"
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
    holder's ticket of the day, or route pass, admits them). Offline scans uploaded later settle the same way,
    once per scan; two gates that both let the same ticket in offline count it once (the second is recorded as
    already entered). The reply's `admit` is the gate's verdict."""
    at = (event.data.scanned_at or dt.datetime.now(dt.UTC)).astimezone(COUNTY_TIME)
    unit = event.data.unit or ""
    if not unit.startswith("spot:"):
        return {"lines": ["闸机未绑定景区 Gate serves no spot"], "admit": False}
    spot = unit.removeprefix("spot:")
    key = f"scan.{event.data.scan_id}"
    scanned = event.data.app_pass
    if scanned is not None:
        holding = await _holding_of_pass(ctx, scanned.data) if scanned.app == APP else None
        if holding is None:
            answer = {"admit": False, "lines": ["无此票 No such ticket"]}
        else:
            answer = await admit(ctx, holding, spot, at, key, event.data.mode)
    elif event.user_id is None:
        answer = {"admit": False, "lines": ["未购票 No ticket in 一码旅游"]}
    else:
        found = await _holding_of_visitor(ctx, event.user_id, spot, at.date().isoformat())
        if found is None:
            answer = {"admit": False, "lines": ["今日无票 No ticket for today"]}
        else:
            answer = await admit(ctx, found, spot, at, key, event.data.mode)
    if event.data.mode == "offline":
        await ctx.log.info("offline gate scan settled", spot=spot, admit=str(answer["admit"]))
        return None
    return {"lines": answer["lines"], "admit": answer["admit"]}


async def _holding_of_visitor(ctx: Context, user_id: str, spot: str, day: str) -> tuple[str, Any] | None:
    tickets = await ctx.db.find("tickets", {"user_id": user_id, "day": day}, limit=50)
    mine = [r for r in tickets.items if r.value["spot"] == spot and r.value["status"] == "booked"]
    if mine:
        return "tickets", min(mine, key=lambda r: r.value["entered"])
    orders = await ctx.db.find("orders", {"user_id": user_id}, limit=50)
    for record in orders.items:
        o = record.value
        if spot in o["spots"] and o["from"] <= day <= o["until"] and o["status"] == "booked":
            return "orders", record
    return None


async def admit(ctx: Context, holding: tuple[str, Any], spot_id: str, at: dt.datetime, key: str,
                mode: str) -> dict[str, Any]:  # fmt: skip
    """Admit the holder of a ticket or route pass at `spot_id`, once per ticket (again the same day where the
    spot allows re-entry); the entry record (id `key`, the scan) and the count are one commit with the ticket,
    so the same scan settles once and two gates never both admit a first entry."""
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
        refusal = await _refusal(ctx, collection, value, spot_id, day)
        entered = value["entered"] if collection == "tickets" else value["entered"].get(spot_id, 0)
        if refusal is None and entered and not spot.value["reentry"]:
            refusal = "已入园 Already entered"
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


async def _refusal(
    ctx: Context, collection: str, value: dict[str, Any], spot_id: str, day: str
) -> str | None:
    if value["status"] != "booked":
        return "票已取消 Ticket cancelled"
    if collection == "tickets":
        if value["spot"] != spot_id:
            return "非本景区门票 Ticket of another spot"
        if value["day"] != day:
            return f"门票日期 {value['day']} Ticket for another day"
    else:
        if spot_id not in value["spots"]:
            return "线路不含本景区 Route does not include this spot"
        if not value["from"] <= day <= value["until"]:
            return "线路票不在有效期 Route pass not valid today"
    if not value.get("paid") and value.get("payment_id"):
        payment = await ctx.payments.status(value["payment_id"])
        if payment.status != "succeeded":
            return "未付款 Not paid"
    return None


# ---- spot staff: slots and capacities; the live count for the spot and the bureau ---------------------------


@app.post("/staff/slots")
async def publish_slot(ctx: Context, request: Request) -> Response:
    new = request.json(NewSlot)
    try:
        start, end = dt.time.fromisoformat(new.start), dt.time.fromisoformat(new.end)
    except ValueError:
        return problem(400, "tourism.bad_slot", "start and end are HH:MM")
    if not start < end or not 1 <= new.capacity <= 100_000:
        return problem(400, "tourism.bad_slot", "start before end, capacity 1-100000")
    if not (await ctx.user.staff()).has("spot_staff", f"spot:{new.spot}"):
        return problem(403, "tourism.other_spot", "you keep another spot")
    if await ctx.db.get("spots", new.spot) is None:
        return problem(404, "tourism.no_such_spot", "no spot with that id")
    slot_id = f"{new.spot}.{new.day.isoformat()}.{start.strftime('%H%M')}"
    value = {"spot": new.spot, "day": new.day.isoformat(), "start": start.strftime("%H:%M"),
             "end": end.strftime("%H:%M"), "capacity": new.capacity, "status": "open"}  # fmt: skip
    try:
        await ctx.db.insert("slots", value, id=slot_id)
    except VersionConflict:
        return problem(409, "tourism.slot_exists", "that slot exists already")
    return Response.json({"id": slot_id, **value}, status=201)


@app.put("/staff/slots/{slot}")
async def change_slot(ctx: Context, request: Request) -> Response:
    changes = request.json(SlotChange)
    record = await ctx.db.get("slots", request.path_params["slot"])
    if record is None:
        return problem(404, "tourism.no_such_slot", "no slot with that id")
    if not (await ctx.user.staff()).has("spot_staff", f"spot:{record.value['spot']}"):
        return problem(403, "tourism.other_spot", "you keep another spot")
    value = dict(record.value)
    if changes.capacity is not None:
        taken = await ctx.storage.counter_get(f"taken:{record.id}")
        if not taken <= changes.capacity <= 100_000:
            return problem(409, "tourism.capacity_below_reservations", f"{taken} places are reserved already")
        value["capacity"] = changes.capacity
    if changes.status is not None:
        if changes.status not in ("open", "closed"):
            return problem(400, "tourism.bad_slot", "status is open or closed")
        value["status"] = changes.status
    try:
        version = await ctx.db.update("slots", record.id, value, expected_version=record.version)
    except VersionConflict:
        return problem(409, "tourism.changed", "the slot changed meanwhile: read it again")
    return Response.json({"id": record.id, **value, "version": version})


async def live(ctx: Context, spot: Any, day: str) -> dict[str, Any]:
    page = await ctx.db.find("slots", {"spot": spot.id, "day": day}, limit=50)
    capacity = sum(s.value["capacity"] for s in page.items if s.value["status"] == "open")
    reserved = 0
    for slot in page.items:
        reserved += await ctx.storage.counter_get(f"taken:{slot.id}")
    admitted = await ctx.storage.counter_get(f"admitted:{spot.id}.{day}")
    return {
        "spot": spot.id, "name": spot.value["name"], "county": spot.value["county"], "day": day,
        "capacity": capacity, "reserved": reserved, "admitted": admitted,
        "warning": capacity > 0 and admitted >= WARN_AT * capacity,
    }  # fmt: skip


@app.get("/staff/spots/{spot}/live")
async def spot_live(ctx: Context, request: Request) -> Response:
    spot = await ctx.db.get("spots", request.path_params["spot"])
    if spot is None:
        return problem(404, "tourism.no_such_spot", "no spot with that id")
    if not (await ctx.user.staff()).has("spot_staff", f"spot:{spot.id}"):
        return problem(403, "tourism.other_spot", "you keep another spot")
    return Response.json(await live(ctx, spot, request.query.get("day") or county_now().date().isoformat()))


@app.get("/bureau/live")
async def bureau_live(ctx: Context, request: Request) -> dict[str, Any]:
    """Every spot's count of the day against its capacity, flagged from 75% (the crowd-control rule)."""
    day = request.query.get("day") or county_now().date().isoformat()
    found = await ctx.db.find("spots", limit=100)
    counts = [await live(ctx, spot, day) for spot in found.items]
    return {"day": day, "spots": counts, "warnings": [c["spot"] for c in counts if c["warning"]]}


# ---- reviews by visitors who entered ------------------------------------------------------------------------


@app.post("/spots/{spot}/reviews")
async def review(ctx: Context, request: Request) -> Response:
    body = request.json(Review)
    if not 1 <= body.stars <= 5 or len(body.text) > 500:
        return problem(400, "tourism.bad_review", "1 to 5 stars and at most 500 characters")
    user_id = await ctx.user.id()
    spot = request.path_params["spot"]
    if user_id is None or not await _entered(ctx, user_id, spot):
        return problem(403, "tourism.not_a_visitor", "only visitors who entered the spot review it")
    review_id = f"{spot}.{user_id}"
    value = {"spot": spot, "user_id": user_id, "stars": body.stars, "text": body.text,
             "at": int(county_now().timestamp())}  # fmt: skip
    for _ in range(3):
        old = await ctx.db.get("reviews", review_id)
        try:
            async with ctx.db.transaction() as tx:  # the rating's counters move with the review
                if old is None:
                    tx.insert("reviews", value, id=review_id)
                    tx.counter_add(f"reviews:{spot}", 1)
                else:
                    tx.update("reviews", review_id, value, expected_version=old.version)
                tx.counter_add(f"stars:{spot}", body.stars - (old.value["stars"] if old else 0))
        except VersionConflict:
            continue
        return Response.json({"id": review_id, **value}, status=201 if old is None else 200)
    return problem(409, "tourism.changed", "your review changed meanwhile: try again")


async def _entered(ctx: Context, user_id: str, spot: str) -> bool:
    tickets = await ctx.db.find("tickets", {"user_id": user_id, "spot": spot}, limit=50)
    if any(r.value["entered"] for r in tickets.items):
        return True
    orders = await ctx.db.find("orders", {"user_id": user_id}, limit=50)
    return any(r.value["entered"].get(spot) for r in orders.items)


@app.get("/spots/{spot}/reviews")
async def reviews(ctx: Context, request: Request) -> dict[str, Any]:
    page = await ctx.db.find(
        "reviews", {"spot": request.path_params["spot"]}, limit=50, after=request.query.get("after")
    )
    return {
        "reviews": [
            {"stars": r.value["stars"], "text": r.value["text"], "at": r.value["at"]} for r in page.items
        ],
        "next": page.cursor,
    }


# ---- demo data for `yima dev` --------------------------------------------------------------------------------


@app.job("seed")
async def seed_demo(ctx: Context, job: JobEvent) -> None:
    """Demo spots, route packages and a week of slots (yima dev runs it once)."""
    first = job.scheduled_at.astimezone(COUNTY_TIME).date() if job.scheduled_at else county_now().date()
    documents = list(seed.documents(first))
    for at in range(0, len(documents), 50):  # one commit per 50 documents
        batch = documents[at : at + 50]
        try:
            async with ctx.db.transaction() as tx:
                for collection, doc_id, value in batch:
                    tx.insert(collection, value, id=doc_id)
        except VersionConflict:  # seeded before (a rerun, another day): each one that is missing
            for collection, doc_id, value in batch:
                try:
                    await ctx.db.insert(collection, value, id=doc_id)
                except VersionConflict:
                    pass
