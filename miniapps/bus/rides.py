"""Riders: the lines in force, their rides, the monthly statement, and disputing a fare."""

from __future__ import annotations

import contextlib
import datetime as dt
from typing import Any

import msgspec
from common import app, month_rides, problem, schedule
from tapoff import finish_refunds
from yima_sdk import Context, Request, Response, VersionConflict
from yima_sdk.cron import COUNTY_TIME
from yima_sdk.fares import FareError


class Dispute(msgspec.Struct, forbid_unknown_fields=True):
    reason: str


@app.get("/lines")
async def lines(ctx: Context, request: Request) -> Response:
    try:
        table = (await schedule(ctx)).table_at(request.received_at or dt.datetime.now(dt.UTC))
    except FareError:
        return problem(404, "bus.no_fare_table", "no fare table is in force yet")
    return Response.json(msgspec.to_builtins(table))


@app.get("/me")
async def me(ctx: Context, request: Request) -> Response:
    """The rider's id in this app (shown at the counter for a concession grant) and their concessions."""
    user_id = await ctx.user.id()
    if user_id is not None and await ctx.db.get("riders", user_id) is None:
        # the page shows the rider their id: the one concessions staff may grant to (concessions.py)
        with contextlib.suppress(VersionConflict):  # recorded by another call a moment ago
            await ctx.db.insert("riders", {"seen_at": dt.datetime.now(dt.UTC).isoformat()}, id=user_id)
    grants = await ctx.db.find("eligibility", {"user_id": user_id}, limit=20)
    concessions = [
        {"category": g.value["category"], "expires_at": g.value["expires_at"]} for g in grants.items
    ]
    return Response.json({"user_id": user_id, "concessions": concessions})


async def with_payments(ctx: Context, found: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The rides with their payments' current status (the rider confirms a fare in the shell after the ride)."""
    out = []
    for ride in found:
        if ride["payment_status"] == "pending_confirmation":
            payment = await ctx.payments.status(ride["payment_id"])
            if payment.status != ride["payment_status"]:
                ride = {**ride, "payment_status": payment.status}
                record = await ctx.db.get("rides", ride["id"])
                if record is not None:
                    try:
                        stored = {**record.value, "payment_status": payment.status}
                        await ctx.db.update("rides", ride["id"], stored, expected_version=record.version)
                    except VersionConflict:
                        pass  # refreshed by another call a moment ago
        out.append(ride)
    return out


@app.get("/rides")
async def rides(ctx: Context, request: Request) -> Response:
    month = request.query.get("month") or dt.datetime.now(COUNTY_TIME).strftime("%Y-%m")
    found = await finish_refunds(
        ctx, await with_payments(ctx, await month_rides(ctx, await ctx.user.id(), month))
    )
    return Response.json({"month": month, "rides": found})


@app.get("/statement")
async def statement(ctx: Context, request: Request) -> Response:
    """The month's totals: what the rides would have cost, what each discount took off, what was paid."""
    month = request.query.get("month") or dt.datetime.now(COUNTY_TIME).strftime("%Y-%m")
    found = await finish_refunds(
        ctx, await with_payments(ctx, await month_rides(ctx, await ctx.user.id(), month))
    )
    total = {k: sum(r.get(k, 0) for r in found) for k in (
        "base_fen", "peak_fen", "concession_off_fen", "transfer_off_fen", "cap_off_fen", "reordered_off_fen",
        "fare_fen", "refunded_fen", "returned_fen", "tapoff_off_fen")}  # fmt: skip
    # Paid: fares whose payment succeeded, and what offline settlement took; to confirm: fares still asked.
    paid = sum(r["fare_fen"] for r in found if r["payment_status"] == "succeeded")
    paid += sum((r.get("settled_fen") or 0) - r.get("returned_fen", 0) for r in found)
    # what tap-offs gave back (分段计价: the ride re-priced by stops travelled); one waiting for its payment's
    # confirmation is still to give back
    paid -= sum(r["tapoff_off_fen"] for r in found if r["tapoff_status"] == "refunded")
    pending = sum(r["fare_fen"] for r in found if r["payment_status"] == "pending_confirmation")
    return Response.json({
        "month": month, "rides": len(found), "transfers": sum(1 for r in found if r["transfer"]),
        "tapped_off": sum(1 for r in found if r["alight"] is not None),
        **total, "paid_fen": paid - total["refunded_fen"], "pending_fen": pending,
    })  # fmt: skip


@app.post("/rides/{ride}/dispute")
async def dispute(ctx: Context, request: Request) -> Response:
    body = request.json(Dispute)
    user_id = await ctx.user.id()
    ride = await ctx.db.get("rides", request.path_params["ride"])
    if ride is None or ride.value["user_id"] != user_id:
        return problem(404, "bus.ride_not_found", "no such ride of yours")
    value = {
        "user_id": user_id,
        "status": "open",
        "reason": body.reason[:500],
        "fare_fen": ride.value["fare_fen"],
    }
    try:
        await ctx.db.insert("disputes", value, id=ride.id)
    except VersionConflict:
        return problem(409, "bus.already_disputed", "this ride's fare is disputed already")
    return Response.json({"ride": ride.id, **value}, status=201)
