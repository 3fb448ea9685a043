"""Sessions: residents find them; schedulers publish, change and cancel those of their institution; the health
authority reads the day's figures (counts, never people)."""

from __future__ import annotations

import datetime as dt
from typing import Any

import msgspec
from bookings import cancel
from common import CANCEL_HOURS, OPEN, STARTS, app, as_doc, county_now, holds, problem
from yima_sdk import Context, Request, Response, VersionConflict


class NewSession(msgspec.Struct, forbid_unknown_fields=True):
    doctor: str
    day: dt.date
    half: str
    capacity: int
    fee_fen: int
    walk_in: bool = False
    referral_reserve: int = 0
    """Slots (within the capacity) that only residents with a referral may book."""
    cancel_hours: int = CANCEL_HOURS
    """Residents cancel (refunded) until this many hours before the session starts."""


class SessionChange(msgspec.Struct, forbid_unknown_fields=True):
    capacity: int | None = None
    fee_fen: int | None = None
    walk_in: bool | None = None
    cancel_hours: int | None = None
    """For bookings made from now on: each keeps the cut-off it was booked under."""


@app.get("/institutions")
async def institutions(ctx: Context, request: Request) -> dict[str, Any]:
    found = await ctx.db.find("institutions", limit=100)
    out = []
    for record in found.items:
        departments = await ctx.db.find("departments", {"institution": record.id}, limit=100)
        out.append({"id": record.id, **record.value, "departments": [as_doc(d) for d in departments.items]})
    return {"institutions": out}


@app.get("/sessions")
async def search(ctx: Context, request: Request) -> Response:
    """Open sessions by `department` or `doctor` (and `day`), or all of a `day`."""
    q = request.query
    day = q.get("day")
    where: dict[str, Any] = {}
    if q.get("department"):
        where["department"] = q["department"]
    elif q.get("doctor"):
        where["doctor"] = q["doctor"]
    elif q.get("institution"):
        where["institution"] = q["institution"]
    elif not day:
        return problem(400, "medical.search_needs_a_filter", "give department, doctor, institution or day")
    if day:
        where["day"] = day
    elif where:
        where["day"] = {"gte": county_now(request).date().isoformat()}
    page = await ctx.db.find("sessions", where, order_by="day", limit=100, after=q.get("after"))
    sessions = []
    for record in page.items:
        if record.value["status"] != "open":
            continue
        taken = await ctx.storage.counter_get(f"taken:{record.id}")
        sessions.append({**as_doc(record), "left": max(record.value["capacity"] - taken, 0)})
    return Response.json({"sessions": sessions, "next": page.cursor})


# ---- schedulers: publish, change, cancel sessions of their institution ----------------------------------


@app.post("/staff/sessions")
async def publish(ctx: Context, request: Request) -> Response:
    new = request.json(NewSession)
    if (
        new.half not in STARTS
        or not 1 <= new.capacity <= 500
        or not 0 <= new.fee_fen <= 100_000
        or not 0 <= new.cancel_hours <= 72
    ):
        return problem(
            400,
            "medical.bad_session",
            "half is am or pm, capacity 1-500, fee 0-100000 fen, cancel_hours 0-72",
        )
    doctor = await ctx.db.get("doctors", new.doctor)
    if doctor is None:
        return problem(404, "medical.no_such_doctor", "no doctor with that id")
    if not await holds(ctx, "scheduler", doctor.value["institution"]):
        return problem(403, "medical.other_institution", "you schedule another institution")
    sid = f"{new.doctor}.{new.day.isoformat()}.{new.half}"
    value = {
        "institution": doctor.value["institution"],
        "department": doctor.value["department"],
        "doctor": new.doctor,
        "doctor_name": doctor.value["name"],
        "day": new.day.isoformat(),
        "half": new.half,
        "capacity": new.capacity,
        "fee_fen": new.fee_fen,
        "walk_in": new.walk_in,
        "referral_reserve": min(max(new.referral_reserve, 0), new.capacity),
        "cancel_hours": new.cancel_hours,
        "status": "open",
    }
    try:
        await ctx.db.insert("sessions", value, id=sid)
    except VersionConflict:
        return problem(409, "medical.session_exists", "that doctor already has that session")
    await ctx.log.info("session published", session=sid)
    return Response.json({"id": sid, **value}, status=201)


@app.put("/staff/sessions/{session}")
async def change(ctx: Context, request: Request) -> Response:
    changes = request.json(SessionChange)
    record = await ctx.db.get("sessions", request.path_params["session"])
    if record is None or record.value["status"] != "open":
        return problem(404, "medical.no_such_session", "no open session with that id")
    if not await holds(ctx, "scheduler", record.value["institution"]):
        return problem(403, "medical.other_institution", "you schedule another institution")
    value = dict(record.value)
    for field in ("capacity", "fee_fen", "walk_in", "cancel_hours"):
        if getattr(changes, field) is not None:
            value[field] = getattr(changes, field)
    if (
        not 0 <= value.get("cancel_hours", CANCEL_HOURS) <= 72
        or not 0 <= value["fee_fen"] <= 100_000
        or value["capacity"] > 500
    ):
        return problem(400, "medical.bad_session", "capacity up to 500, fee 0-100000 fen, cancel_hours 0-72")
    taken = await ctx.storage.counter_get(f"taken:{record.id}")
    if value["capacity"] < taken:
        return problem(409, "medical.capacity_below_bookings", f"{taken} are booked already")
    try:
        version = await ctx.db.update("sessions", record.id, value, expected_version=record.version)
    except VersionConflict:
        return problem(409, "medical.changed", "the session changed meanwhile: read it again")
    return Response.json({"id": record.id, **value, "version": version})


@app.post("/staff/sessions/{session}/cancel")
async def cancel_session(ctx: Context, request: Request) -> Response:
    """Cancel a session: every resident still to be seen (booked, checked in, or called to the room but not
    yet seen through) is told and refunded."""
    record = await ctx.db.get("sessions", request.path_params["session"])
    if record is None:
        return problem(404, "medical.no_such_session", "no session with that id")
    if not await holds(ctx, "scheduler", record.value["institution"]):
        return problem(403, "medical.other_institution", "you schedule another institution")
    if record.value["status"] == "open":
        await ctx.db.update("sessions", record.id, {**record.value, "status": "cancelled"})
    told = refunded = 0
    for status in OPEN:  # a retried cancel finishes what a failed one left
        while True:
            page = await ctx.db.find("bookings", {"session": record.id, "status": status}, limit=50)
            if not page.items:
                break
            for booking in page.items:
                refunded += await cancel(ctx, booking, "门诊停诊 the session was cancelled")
                await ctx.notify.send(
                    "门诊停诊 Session cancelled",
                    f"{record.value['doctor_name']} {booking.value['day']} {booking.value['half']}: "
                    "停诊, 挂号费已退 the session is cancelled; your fee is refunded",
                    user_id=booking.value["user_id"],
                )
                told += 1
    return Response.json({"status": "cancelled", "told": told, "refunded_fen": refunded})


# ---- the health authority: counts, never people -----------------------------------------------------------


@app.get("/authority/day/{day}")
async def day_figures(ctx: Context, request: Request) -> dict[str, Any]:
    """Per institution, the day's bookings (every status) and the fees booked; no names, no ids."""
    day = request.path_params["day"]
    groups = await ctx.db.aggregate("bookings", "institution", where={"day": day}, sum="fee_fen")
    await ctx.log.info("authority read the day's figures", day=day)
    return {
        "day": day,
        "institutions": [{"institution": g.key, "bookings": g.count, "fees_fen": g.sum} for g in groups],
    }
