"""Cross-county route packages: one order, one pass honoured at each of the route's spots."""

from __future__ import annotations

import datetime as dt
from typing import Any

import msgspec
from common import app, as_doc, at_time, county_now, problem
from yima_sdk import Context, Request, Response, VersionConflict


class Buy(msgspec.Struct, forbid_unknown_fields=True):
    day: dt.date


@app.get("/packages")
async def packages(ctx: Context, request: Request) -> dict[str, Any]:
    found = await ctx.db.find("packages", limit=50)
    return {"packages": [as_doc(r) for r in found.items]}


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
