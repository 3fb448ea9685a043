"""Tickets: a visitor reserves places in a slot (a group at once), pays with the one-card, holds the ticket as a
pass, and cancels with a refund."""

from __future__ import annotations

import datetime as dt
from typing import Any

import msgspec
from common import age_on, app, as_doc, at_time, county_now, problem
from yima_sdk import ConsentDenied, Context, CounterOutOfRange, Request, Response, VersionConflict

MAX_GROUP = 30
LOCAL_SCOPES = {"guangde": "registered_in:341822"}
"""Where local residents pay half: the county of a spot -> the consent scope that says (yes or no only) whether
the visitor is registered there (its administrative division code; declared under [scopes])."""


class Reserve(msgspec.Struct, forbid_unknown_fields=True):
    people: int = 1
    """More than one: a group ticket at the full price of each, admitting them all at one scan."""


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
    return {"tickets": [as_doc(r) for r in page.items], "orders": [as_doc(r) for r in orders.items]}


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
