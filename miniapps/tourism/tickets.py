"""Tickets: a visitor reserves places in a slot (a group at once), pays with the one-card, holds the ticket as a
pass, and cancels with a refund."""

from __future__ import annotations

import datetime as dt
from typing import Any

import msgspec
from cancels import PAY_WITHIN, begin_cancel, finish_cancel, withdraw
from common import age_on, app, as_doc, at_time, county_now, problem
from gate_lists import hold_for_gates
from yima_sdk import (
    CapabilityFailed,
    ConsentDenied,
    Context,
    CounterOutOfRange,
    Record,
    Request,
    Response,
    VersionConflict,
)

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
    concurrency, since the bounded counter and the ticket are one commit, which also checks that the slot (its
    capacity, its status) is still the one read. A retry answers the same ticket. A ticket with a price holds
    its places for PAY_WITHIN; unpaid by then, the sweep gives them back."""
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
    if county_now(request) >= at_time(s["day"], s["end"]):
        return problem(409, "tourism.slot_over", "this slot is over")
    ticket_id = f"{slot.id}.{user_id}"
    existing = await ctx.db.get("tickets", ticket_id)
    if existing is not None and existing.value["status"] == "booked":
        return await _again(ctx, existing)
    if existing is not None and existing.value["status"] == "cancelling":
        return problem(409, "tourism.cancelling", "your earlier ticket is being refunded: try again")
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
    now = county_now(request)
    value = {
        "slot": slot.id, "spot": s["spot"], "spot_name": spot.value["name"], "day": s["day"], "start": s["start"],
        "end": s["end"], "user_id": user_id, "people": body.people, "number": number, "status": "booked",
        "price_fen": price, "concession": concession, "payment_id": None, "paid": price == 0, "pass": None,
        "entered": 0, "reserved_at": int(now.timestamp()),
        "hold_until": None if price == 0 else int((now + PAY_WITHIN).timestamp()),
    }  # fmt: skip
    for _ in range(3):
        try:
            booked = await _book(ctx, ticket_id, existing, value)
        except CounterOutOfRange:
            return problem(409, "tourism.full", "not enough places left in this slot")
        except VersionConflict:  # the slot changed (capacity, status), or the ticket did
            existing = await ctx.db.get("tickets", ticket_id)
            if existing is not None and existing.value["status"] == "booked":
                return await _again(ctx, existing)
            if existing is not None and existing.value["status"] == "cancelling":
                return problem(409, "tourism.cancelling", "your earlier ticket is being refunded: try again")
            continue
        if not booked:
            return problem(404, "tourism.no_such_slot", "no open slot with that id")
        return await _paid_and_passed(ctx, ticket_id, value, status=201)
    return problem(409, "tourism.changed", "the slot changed meanwhile: try again")


async def _book(ctx: Context, ticket_id: str, existing: Record | None, value: dict[str, Any]) -> bool:
    """Take the ticket's places in one commit with the ticket, bounded by the capacity of the slot as this commit
    reads it (a capacity lowered or a slot closed meanwhile fails it: VersionConflict). False: slot closed."""
    async with ctx.db.transaction() as tx:
        slot = await tx.get("slots", value["slot"])
        if slot is None or slot.value["status"] != "open":
            return False
        tx.counter_add(f"taken:{slot.id}", value["people"], max=slot.value["capacity"])
        if existing is None:
            tx.insert("tickets", value, id=ticket_id)
        else:  # a cancelled or released ticket of the caller: booked afresh, with a new number
            tx.update("tickets", ticket_id, value, expected_version=existing.version)
    return True


async def _again(ctx: Context, record: Record) -> Response:
    """A booked ticket asked for again: the same ticket; a declined or failed charge is replaced by a new one
    (within the same payment window)."""
    value = record.value
    if value["payment_id"] is not None and not value["paid"]:
        payment = await ctx.payments.status(value["payment_id"])
        if payment.status in ("declined", "failed"):  # asked again: a new charge for the same ticket
            value = {**value, "payment_id": None, "attempt": value.get("attempt", 0) + 1}
    return await _paid_and_passed(ctx, record.id, value, status=200)


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


async def _paid_and_passed(ctx: Context, ticket_id: str, value: dict[str, Any], *, status: int) -> Response:
    """The ticket charged once (the key names the ticket, its number and the attempt: a retry finds the same
    payment) and held as a pass valid until the end of its day, and once paid at its spot's gates (gate_lists.py).
    A charge made for a ticket that was released or cancelled meanwhile is withdrawn at once (the visitor cannot
    confirm it), and the answer says it changed."""
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
    if changes and not await store_changes(ctx, "tickets", ticket_id, value["number"], changes):
        if "payment_id" in changes:
            await withdraw(ctx, changes["payment_id"], f"withdrawn.{changes['payment_id']}")
        if "pass" in changes:
            await ctx.credentials.revoke_pass(changes["pass"]["id"])
        return problem(
            409, "tourism.changed", "the ticket was released or cancelled meanwhile: reserve again"
        )
    value = {**value, **changes}
    if await hold_for_gates(ctx, "tickets", ticket_id):  # paid (or free): its spot's gates admit it offline
        value = {**value, "paid": True, "gates": True}
    return Response.json({"id": ticket_id, **value}, status=status)


async def store_changes(
    ctx: Context, collection: str, doc_id: str, number: int, changes: dict[str, Any]
) -> bool:
    """Write a new charge or pass onto the booked ticket or order `number` (not onto one booked afresh since);
    False if it is no longer booked, or holds another charge: the caller takes its charge or pass back."""
    for _ in range(5):
        record = await ctx.db.get(collection, doc_id)
        if record is None or record.value["number"] != number or record.value["status"] != "booked":
            return False
        held = record.value["payment_id"]
        if "payment_id" in changes and held not in (None, changes["payment_id"]):
            if record.value.get("attempt", 0) >= changes["attempt"]:
                return False  # a later charge is there already: ours is not the ticket's
        try:
            await ctx.db.update(
                collection, doc_id, {**record.value, **changes}, expected_version=record.version
            )
        except VersionConflict:  # a scan, a second request: read it again
            continue
        return True
    return False


@app.get("/tickets")
async def my_tickets(ctx: Context, request: Request) -> dict[str, Any]:
    """The caller's tickets and route orders; those paid since (the resident confirmed the payment in the
    super-app) are held at their gates now."""
    user_id = await ctx.user.id()
    for _ in range(2):
        page = await ctx.db.find("tickets", {"user_id": user_id}, order_by="day", limit=100)
        orders = await ctx.db.find("orders", {"user_id": user_id}, limit=100)
        waiting = [(name, r.id) for name, found in (("tickets", page), ("orders", orders)) for r in found.items
                   if r.value["status"] == "booked" and not r.value.get("gates")]  # fmt: skip
        held = [await hold_for_gates(ctx, name, record_id) for name, record_id in waiting]
        if not any(held):
            break  # else read again: the answer shows them paid and held
    return {"tickets": [as_doc(r) for r in page.items], "orders": [as_doc(r) for r in orders.items]}


@app.delete("/tickets/{ticket}")
async def cancel(ctx: Context, request: Request) -> Response:
    """Cancel before the slot starts: the places go back, the pass is revoked, an unconfirmed charge withdrawn
    or a paid price refunded. The cancel is recorded before any money moves (`cancelling`): a DELETE retried
    after a failure, or the sweep, finishes it and refunds exactly once."""
    record = await ctx.db.get("tickets", request.path_params["ticket"])
    if record is None or record.value["user_id"] != await ctx.user.id():
        return problem(404, "tourism.no_such_ticket", "no open ticket of yours with that id")
    t = record.value
    if t["status"] == "booked":
        if county_now(request) >= at_time(t["day"], t["start"]) or t["entered"]:
            return problem(409, "tourism.past_cutoff", "a ticket can be cancelled until its slot starts")
        try:
            record = await begin_cancel(ctx, "tickets", record, "visitor")
        except VersionConflict:
            return problem(409, "tourism.changed", "the ticket changed meanwhile: try again")
    elif t["status"] != "cancelling":
        return problem(404, "tourism.no_such_ticket", "no open ticket of yours with that id")
    try:
        refunded = await finish_cancel(ctx, "tickets", record)
    except CapabilityFailed:  # no refund just now: it is owed, and a retry or the sweep finishes it
        return Response.json({"status": "cancelling", "refunded_fen": 0}, status=202)
    return Response.json({"status": "cancelled", "refunded_fen": refunded})
