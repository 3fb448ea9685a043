"""一卡通行: the daily clearing report per partner county, and the rides whose terminal price settlement
corrected."""

from __future__ import annotations

import datetime as dt
from typing import Any

from common import PARTNERS, app, problem
from yima_sdk import Context, JobEvent, Request, Response, VersionConflict
from yima_sdk.cron import COUNTY_TIME


async def clearing_for(ctx: Context, day: dt.date) -> list[dict[str, Any]]:
    """The day's report, computed once and then kept: asking again (or the job running again) gives the same."""
    kept = await ctx.db.find("clearing", {"day": day.isoformat()}, limit=100)
    if kept.items:
        return sorted((r.value for r in kept.items), key=lambda v: v["issuer"])
    totals: dict[int, list[int]] = {}
    after = None
    while True:
        page = await ctx.db.find("rides", {"day": day.isoformat()}, limit=100, after=after)
        for r in page.items:
            issuer = r.value.get("issuer")
            if issuer in PARTNERS and r.value["user_id"] is None:
                counts = totals.setdefault(issuer, [0, 0])
                counts[0] += 1
                counts[1] += r.value["fare_fen"]
        after = page.cursor
        if after is None:
            break
    rows = [{"day": day.isoformat(), "issuer": issuer, "county": PARTNERS[issuer], "rides": totals.get(issuer, [0, 0])[0],
             "amount_fen": totals.get(issuer, [0, 0])[1]} for issuer in sorted(PARTNERS)]  # fmt: skip
    try:
        async with ctx.db.transaction() as tx:
            for row in rows:
                tx.insert("clearing", row, id=f"{row['day']}.{row['issuer']}")
    except VersionConflict:  # computed at the same moment by the job or another call: theirs is the report
        kept = await ctx.db.find("clearing", {"day": day.isoformat()}, limit=100)
        return sorted((r.value for r in kept.items), key=lambda v: v["issuer"])
    return rows


@app.get("/fares/clearing")
async def clearing(ctx: Context, request: Request) -> Response:
    """`?day=2026-12-07&format=csv|json`: rides of partner counties' codes that day and what each owes, as the
    00:30 job cleared it (the same answer every time)."""
    try:
        day = dt.date.fromisoformat(request.query.get("day", ""))
    except ValueError:
        return problem(400, "bus.bad_day", "give day=YYYY-MM-DD")
    kept = await ctx.db.find("clearing", {"day": day.isoformat()}, limit=100)
    if not kept.items:
        return problem(404, "bus.not_cleared", "the day is cleared at 00:30 county time the day after")
    rows = sorted((r.value for r in kept.items), key=lambda v: v["issuer"])
    if request.query.get("format") == "csv":
        lines = ["day,issuer,county,rides,amount_fen"]
        lines += [f"{r['day']},{r['issuer']},{r['county']},{r['rides']},{r['amount_fen']}" for r in rows]
        return Response(
            body=("\r\n".join(lines) + "\r\n").encode(), headers={"content-type": "text/csv; charset=utf-8"}
        )
    return Response.json({"day": day.isoformat(), "counties": rows})


@app.get("/fares/repriced")
async def repriced(ctx: Context, request: Request) -> Response:
    """`?day=2026-12-07`: that day's offline rides whose terminal price settlement corrected (the terminal held
    an older table, or none): what the terminal asked and what was charged, so no correction goes unseen."""
    try:
        day = dt.date.fromisoformat(request.query.get("day", ""))
    except ValueError:
        return problem(400, "bus.bad_day", "give day=YYYY-MM-DD")
    found = []
    after = None
    while True:
        page = await ctx.db.find("rides", {"day": day.isoformat()}, limit=100, after=after)
        for r in page.items:
            v = r.value
            if v["mode"] == "offline" and v.get("terminal_fen") != v.get("settled_fen"):
                found.append({"ride": r.id, "line": v["line"], "at": v["at"], "terminal": v["terminal"],
                              "table_version": v["table_version"], "terminal_fen": v.get("terminal_fen"),
                              "settled_fen": v.get("settled_fen")})  # fmt: skip
        after = page.cursor
        if after is None:
            break
    return Response.json({"day": day.isoformat(), "rides": found})


@app.job("clear")
async def clear_yesterday(ctx: Context, job: JobEvent) -> None:
    """00:30 county time: yesterday's clearing report (kept; a rerun finds it)."""
    await clearing_for(ctx, job.scheduled_at.astimezone(COUNTY_TIME).date() - dt.timedelta(days=1))
