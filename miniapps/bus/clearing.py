"""一卡通行: the daily clearing report per partner county, with a row per ride, and the rides whose terminal price
settlement corrected.

Each partner ride is owed on exactly one report. The report of day D, written by the 00:30 job of the day after,
takes the rides of day D and every partner ride still waiting (`uncleared`, written with the ride) of an earlier
day: a ride uploaded after its own day was cleared is owed on the next report, marked `late`. A ride goes to a
report in one commit that writes its row (`clearing_rides`, id = the ride: never on two reports), drops its
waiting mark and counts it on the day's state (`clearing_days`); the report is closed in one commit with the day's
state as read, so no ride joins it after its totals were written. A rerun of the job finds it closed: the report
never changes once issued."""

from __future__ import annotations

import datetime as dt
from typing import Any

from common import PARTNERS, app, problem
from yima_sdk import Context, JobEvent, Request, Response, VersionConflict
from yima_sdk.cron import COUNTY_TIME


async def record_partner_ride(ctx: Context, ride_id: str, value: dict[str, Any], issuer: int) -> None:
    """The ride, and its mark waiting for the next clearing report, in one commit (VersionConflict: the same
    scan was recorded by another delivery)."""
    async with ctx.db.transaction() as tx:
        tx.insert("rides", value, id=ride_id)
        tx.insert("uncleared", {"issuer": issuer, "day": value["day"]}, id=ride_id)


async def find_all(ctx: Context, collection: str, where: dict[str, Any]) -> list[Any]:
    found, after = [], None
    while True:
        page = await ctx.db.find(collection, where, limit=100, after=after)
        found.extend(page.items)
        after = page.cursor
        if after is None:
            return found


async def claim(ctx: Context, day: str, ride: Any) -> bool:
    """Put `ride` (a partner ride record) on the report of `day`; False once that report is closed."""
    async with ctx.db.transaction() as tx:
        state = await tx.get("clearing_days", day)
        if state is not None and state.value["closed"]:
            return False
        waiting = await tx.get("uncleared", ride.id)
        if await tx.get("clearing_rides", ride.id) is not None:  # on a report already: this one, or its day's
            if waiting is not None:
                tx.delete("uncleared", ride.id, expected_version=waiting.version)
            return True
        # read (and, for a ride, written) here: a partner tap-off lowering its fare meanwhile fails this
        # commit, or sees the ride on this report and leaves an adjustment for the next (partner_tapoff.py)
        adjustment = ride.id.startswith("adj.")
        current = await tx.get("adjustments" if adjustment else "rides", ride.id)
        if current is None:
            return True
        v = current.value
        row = {"report_day": day, "ride": v.get("ride", ride.id), "issuer": v["issuer"], "day": v["day"],
               "at": v["at"], "line": v["line"], "fare_fen": v["fare_fen"], "mode": v["mode"],
               "late": v["day"] != day}  # fmt: skip
        if not adjustment:
            tx.update("rides", ride.id, {**v, "report_day": day}, expected_version=current.version)
        tx.insert("clearing_rides", row, id=ride.id)
        if waiting is not None:
            tx.delete("uncleared", ride.id, expected_version=waiting.version)
        claimed = {"day": day, "closed": False, "rides": 1 + (0 if state is None else state.value["rides"])}
        if state is None:
            tx.insert("clearing_days", claimed, id=day)
        else:
            tx.update("clearing_days", day, claimed, expected_version=state.version)
    return True


async def clearing_for(ctx: Context, day: dt.date) -> None:
    """Write the day's report once: claim its rides and the late ones, then close it with its totals."""
    key = day.isoformat()
    if (await ctx.db.find("clearing", {"day": key}, limit=1)).items:
        return  # closed (or cleared before reports had rows per ride)
    rides = [r for r in await find_all(ctx, "rides", {"day": key}) if partner(r.value)]
    for mark in await find_all(ctx, "uncleared", {"day": {"lt": key}}):
        ride = await ctx.db.get("adjustments" if mark.id.startswith("adj.") else "rides", mark.id)
        if ride is not None:
            rides.append(ride)
    for ride in rides:
        for _ in range(10):  # another claim of this day committed first: try again
            try:
                if not await claim(ctx, key, ride):
                    return  # closed by another run meanwhile
                break
            except VersionConflict:
                continue
    while True:
        try:
            async with ctx.db.transaction() as tx:
                state = await tx.get("clearing_days", key)
                if state is not None and state.value["closed"]:
                    return
                owed = await find_all(ctx, "clearing_rides", {"report_day": key})
                for row in county_rows(key, [r.value for r in owed]):
                    tx.insert("clearing", row, id=f"{key}.{row['issuer']}")
                closed = {"day": key, "closed": True, "rides": len(owed)}
                if state is None:
                    tx.insert("clearing_days", closed, id=key)
                else:
                    tx.update("clearing_days", key, closed, expected_version=state.version)
            return
        except VersionConflict:  # a ride claimed meanwhile (recount), or closed by another run (done)
            continue


def partner(value: dict[str, Any]) -> bool:
    return value.get("issuer") in PARTNERS and value["user_id"] is None


def county_rows(day: str, owed: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per partner county, zero rows included: its rides on the report, the late ones, what it owes (less
    the tap-off adjustments of rides on earlier reports: rows of mode `tap_off`: a negative fare, on the ride tapped off)."""
    return [
        {"day": day, "issuer": issuer, "county": PARTNERS[issuer],
         "rides": sum(1 for r in owed if r["issuer"] == issuer and r["mode"] != "tap_off"),
         "amount_fen": sum(r["fare_fen"] for r in owed if r["issuer"] == issuer),
         "late_rides": sum(1 for r in owed if r["issuer"] == issuer and r["late"] and r["mode"] != "tap_off")}
        for issuer in sorted(PARTNERS)
    ]  # fmt: skip


COUNTY_COLUMNS = ("day", "issuer", "county", "rides", "amount_fen", "late_rides")
RIDE_COLUMNS = ("ride", "issuer", "day", "at", "line", "fare_fen", "mode", "late")


async def report(ctx: Context, request: Request, issuers: set[int]) -> Response:
    """`?day=2026-12-07&format=json|csv&rows=counties|rides`: the day's report as cleared, for `issuers`."""
    try:
        day = dt.date.fromisoformat(request.query.get("day", ""))
    except ValueError:
        return problem(400, "bus.bad_day", "give day=YYYY-MM-DD")
    kept = await ctx.db.find("clearing", {"day": day.isoformat()}, limit=100)
    if not kept.items:
        return problem(404, "bus.not_cleared", "the day is cleared at 00:30 county time the day after")
    counties = sorted(
        (r.value for r in kept.items if r.value["issuer"] in issuers), key=lambda v: v["issuer"]
    )
    owed = await find_all(ctx, "clearing_rides", {"report_day": day.isoformat()})
    rides = sorted(
        (r.value for r in owed if r.value["issuer"] in issuers), key=lambda v: (v["at"], v["ride"])
    )
    rides = [{k: r[k] for k in RIDE_COLUMNS} for r in rides]
    if request.query.get("format") == "csv":
        if request.query.get("rows") == "rides":
            lines = [",".join(RIDE_COLUMNS)]
            lines += [
                ",".join(str(r[k]).lower() if k == "late" else str(r[k]) for k in RIDE_COLUMNS) for r in rides
            ]
        else:
            lines = [",".join(COUNTY_COLUMNS)]
            lines += [",".join(str(r[k]) for k in COUNTY_COLUMNS) for r in counties]
        return Response(
            body=("\r\n".join(lines) + "\r\n").encode(), headers={"content-type": "text/csv; charset=utf-8"}
        )
    return Response.json({"day": day.isoformat(), "counties": counties, "rides": rides})


@app.get("/fares/clearing")
async def clearing(ctx: Context, request: Request) -> Response:
    """Guangde's fares staff: every partner county's rows (the 00:30 job's report; the same every time)."""
    return await report(ctx, request, set(PARTNERS))


@app.get("/partner/clearing")
async def partner_clearing(ctx: Context, request: Request) -> Response:
    """A partner county's staff (role `partner` at `county:<code>`): their own county's rows only."""
    roles = await ctx.user.staff()
    issuers = {
        int(u.removeprefix("county:")) for u in roles.units("partner") if u.removeprefix("county:").isdigit()
    }
    issuers &= set(PARTNERS)
    if not issuers:
        return problem(
            403, "bus.county_required", "the partner role is held at a partner county (county:<code>)"
        )
    return await report(ctx, request, issuers)


@app.get("/fares/repriced")
async def repriced(ctx: Context, request: Request) -> Response:
    """`?day=2026-12-07`: that day's offline rides whose terminal price settlement corrected (the terminal held
    an older table, or none): what the terminal asked and what was charged, so no correction goes unseen."""
    try:
        day = dt.date.fromisoformat(request.query.get("day", ""))
    except ValueError:
        return problem(400, "bus.bad_day", "give day=YYYY-MM-DD")
    found = []
    for r in await find_all(ctx, "rides", {"day": day.isoformat()}):
        v = r.value
        if v["mode"] == "offline" and v.get("terminal_fen") != v.get("settled_fen"):
            found.append({"ride": r.id, "line": v["line"], "at": v["at"], "terminal": v["terminal"],
                          "table_version": v["table_version"], "terminal_fen": v.get("terminal_fen"),
                          "settled_fen": v.get("settled_fen")})  # fmt: skip
    return Response.json({"day": day.isoformat(), "rides": found})


@app.job("clear")
async def clear_yesterday(ctx: Context, job: JobEvent) -> None:
    """00:30 county time: yesterday's clearing report (kept; a rerun finds it)."""
    await clearing_for(ctx, job.scheduled_at.astimezone(COUNTY_TIME).date() - dt.timedelta(days=1))
