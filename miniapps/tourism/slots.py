"""Spots and their daily time slots: visitors look them up; spot staff publish slots and set capacities; the
live count for the spot and for the bureau."""

from __future__ import annotations

import datetime as dt
from typing import Any

import msgspec
from cancels import begin_cancel, finish_cancel
from common import app, as_doc, county_now, outside_horizon, problem
from yima_sdk import Context, CounterOutOfRange, JobEvent, Request, Response, VersionConflict

WARN_AT = 0.75
"""The crowd-control rule: a spot whose count reaches 75% of the day's capacity is flagged to the bureau."""


class NewSlot(msgspec.Struct, forbid_unknown_fields=True):
    spot: str
    day: dt.date
    start: str
    end: str
    capacity: int


class SlotChange(msgspec.Struct, forbid_unknown_fields=True):
    capacity: int | None = None
    status: str | None = None


@app.get("/spots")
async def spots(ctx: Context, request: Request) -> dict[str, Any]:
    where = {"county": request.query["county"]} if request.query.get("county") else None
    found = await ctx.db.find("spots", where, limit=100)
    out = []
    for record in found.items:
        count = await ctx.storage.counter_get(f"reviews:{record.id}")
        stars = await ctx.storage.counter_get(f"stars:{record.id}")
        out.append({**as_doc(record), "reviews": count, "rating": round(stars / count, 1) if count else None})
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
        out.append({**as_doc(record), "left": max(record.value["capacity"] - taken, 0)})
    return Response.json({"slots": out})


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
    if (refused := outside_horizon(new.day, request)) is not None:
        return refused
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
    """Resize, close or reopen a slot. The capacity never goes below the places reserved: the commit checks the
    `taken` counter against it, and a reservation's commit checks the slot it read, so whichever commits second
    sees the other. Closing cancels the slot's booked tickets, refunds them and tells their visitors (a job,
    `close_slot`, within seconds)."""
    changes = request.json(SlotChange)
    record = await ctx.db.get("slots", request.path_params["slot"])
    if record is None:
        return problem(404, "tourism.no_such_slot", "no slot with that id")
    if not (await ctx.user.staff()).has("spot_staff", f"spot:{record.value['spot']}"):
        return problem(403, "tourism.other_spot", "you keep another spot")
    value = dict(record.value)
    if changes.capacity is not None:
        if not 1 <= changes.capacity <= 100_000:
            return problem(400, "tourism.bad_slot", "capacity 1-100000")
        value["capacity"] = changes.capacity
    if changes.status is not None:
        if changes.status not in ("open", "closed"):
            return problem(400, "tourism.bad_slot", "status is open or closed")
        value["status"] = changes.status
    try:
        async with ctx.db.transaction() as tx:
            tx.update("slots", record.id, value, expected_version=record.version)
            tx.counter_add(f"taken:{record.id}", 0, max=value["capacity"])  # fails the commit if over it
    except CounterOutOfRange:
        taken = await ctx.storage.counter_get(f"taken:{record.id}")
        return problem(409, "tourism.capacity_below_reservations", f"{taken} places are reserved already")
    except VersionConflict:
        return problem(409, "tourism.changed", "the slot changed meanwhile: read it again")
    if record.value["status"] == "open" and value["status"] == "closed":
        version = tx.results[0]
        await ctx.jobs.schedule(dt.timedelta(0), "close_slot", {"slot": record.id, "version": version, "round": 0},
                                key=f"close.{record.id}.{version}.0")  # fmt: skip
    return Response.json({"id": record.id, **value, "version": tx.results[0]})


CLOSE_BATCH = 20
"""Tickets one run of `close_slot` cancels (a run has the call's deadline); the next run does the rest."""


@app.job("close_slot")
async def close_slot(ctx: Context, job: JobEvent) -> None:
    """Cancel and refund the booked tickets of a closed slot, telling each visitor; tickets already used at the
    gate are kept. Stops if the slot was opened again."""
    slot = await ctx.db.get("slots", job.data["slot"])
    if slot is None or slot.value["status"] != "closed":
        return
    done, more, after = 0, False, None
    while not more:
        page = await ctx.db.find("tickets", {"slot": slot.id}, limit=100, after=after)
        for record in page.items:
            if record.value["status"] not in ("booked", "cancelling") or record.value["entered"]:
                continue
            if done == CLOSE_BATCH:
                more = True
                break
            if record.value["status"] == "booked":
                try:
                    record = await begin_cancel(ctx, "tickets", record, "slot_closed")
                except VersionConflict:  # paid, or cancelled, meanwhile: the next run reads it again
                    more = True
                    continue
            await finish_cancel(ctx, "tickets", record)
            done += 1
        after = page.cursor
        if after is None:
            break
    if more:
        after_round = job.data["round"] + 1
        await ctx.jobs.schedule(dt.timedelta(seconds=1), "close_slot", {**job.data, "round": after_round},
                                key=f"close.{slot.id}.{job.data['version']}.{after_round}")  # fmt: skip


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
