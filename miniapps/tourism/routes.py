"""Cross-county route packages: one order, one pass honoured at each of the route's spots; cancelled with a
refund until a gate admits it."""

from __future__ import annotations

import datetime as dt
from typing import Any

import msgspec
from cancels import begin_cancel, finish_cancel, withdraw
from common import app, as_doc, at_time, county_now, outside_horizon, problem
from gate_lists import hold_for_gates
from tickets import store_changes
from yima_sdk import CapabilityFailed, Context, Request, Response, VersionConflict


class Buy(msgspec.Struct, forbid_unknown_fields=True):
    day: dt.date


@app.get("/packages")
async def packages(ctx: Context, request: Request) -> dict[str, Any]:
    found = await ctx.db.find("packages", limit=50)
    return {"packages": [as_doc(r) for r in found.items]}


@app.post("/packages/{package}/buy")
async def buy_package(ctx: Context, request: Request) -> Response:
    """A route from `day` (today to HORIZON_DAYS ahead) as one order: one charge, one pass valid `valid_days`.
    Buying again answers the same order (a declined or failed charge replaced by a new one); a cancelled order
    is bought afresh."""
    user_id = await ctx.user.id()
    if user_id is None:
        return problem(401, "tourism.sign_in", "sign in to buy a route")
    body = request.json(Buy)
    if (refused := outside_horizon(body.day, request)) is not None:
        return refused
    package = await ctx.db.get("packages", request.path_params["package"])
    if package is None:
        return problem(404, "tourism.no_such_package", "no route package with that id")
    p = package.value
    order_id = f"{package.id}.{body.day.isoformat()}.{user_id}"
    existing = await ctx.db.get("orders", order_id)
    if existing is not None and existing.value["status"] == "cancelling":
        return problem(409, "tourism.cancelling", "your earlier order is being refunded: try again shortly")
    if existing is None or existing.value["status"] != "booked":
        number = await ctx.storage.counter_add("orders", 1)
        last = body.day + dt.timedelta(days=p["valid_days"] - 1)
        value = {
            "package": package.id, "name": p["name"], "spots": p["spots"], "user_id": user_id, "number": number,
            "from": body.day.isoformat(), "until": last.isoformat(), "price_fen": p["price_fen"],
            "payment_id": None, "pass": None, "entered": {}, "status": "booked",
        }  # fmt: skip
        try:
            if existing is None:
                await ctx.db.insert("orders", value, id=order_id)
            else:
                await ctx.db.update("orders", order_id, value, expected_version=existing.version)
        except VersionConflict:  # bought twice at once: the other request's order
            existing = await ctx.db.get("orders", order_id)
            if existing is None or existing.value["status"] != "booked":
                return problem(409, "tourism.changed", "the order changed meanwhile: try again")
        else:
            existing = None
    if existing is not None:
        value = existing.value
        if value["payment_id"] is not None and not value.get("paid"):
            payment = await ctx.payments.status(value["payment_id"])
            if payment.status in ("declined", "failed"):  # asked again: a new charge for the same order
                value = {**value, "payment_id": None, "attempt": value.get("attempt", 0) + 1}
    changes: dict[str, Any] = {}
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
    if changes and not await store_changes(ctx, "orders", order_id, value["number"], changes):
        if "payment_id" in changes:
            await withdraw(ctx, changes["payment_id"], f"withdrawn.{changes['payment_id']}")
        if "pass" in changes:
            await ctx.credentials.revoke_pass(changes["pass"]["id"])
        return problem(409, "tourism.changed", "the order was cancelled meanwhile: buy again")
    value = {**value, **changes}
    if await hold_for_gates(ctx, "orders", order_id):  # paid: each of its spots' gates admits it offline
        value = {**value, "paid": True, "gates": True}
    return Response.json({"id": order_id, **value}, status=201 if existing is None else 200)


@app.delete("/orders/{order}")
async def cancel_order(ctx: Context, request: Request) -> Response:
    """Cancel a route order none of whose spots has admitted it, until its last day: the pass revoked, the
    charge withdrawn or refunded (as a ticket's cancel: recorded first, finished by a retry or the sweep)."""
    record = await ctx.db.get("orders", request.path_params["order"])
    if record is None or record.value["user_id"] != await ctx.user.id():
        return problem(404, "tourism.no_such_order", "no open route order of yours with that id")
    o = record.value
    if o["status"] == "booked":
        if any(o["entered"].values()):
            return problem(409, "tourism.route_entered", "a route a gate admitted is not cancelled")
        if county_now(request).date().isoformat() > o["until"]:
            return problem(409, "tourism.past_cutoff", "the route's days are over")
        try:
            record = await begin_cancel(ctx, "orders", record, "visitor")
        except VersionConflict:
            return problem(409, "tourism.changed", "the order changed meanwhile: try again")
    elif o["status"] != "cancelling":
        return problem(404, "tourism.no_such_order", "no open route order of yours with that id")
    try:
        refunded = await finish_cancel(ctx, "orders", record)
    except CapabilityFailed:  # the refund is owed: a retry or the sweep finishes it
        return Response.json({"status": "cancelling", "refunded_fen": 0}, status=202)
    return Response.json({"status": "cancelled", "refunded_fen": refunded})
