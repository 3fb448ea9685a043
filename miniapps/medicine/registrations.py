"""The health authority: the registration switch and limits, and the registrations it reads (each read
recorded)."""

from __future__ import annotations

import re
import time
from typing import Any

import msgspec
from common import DEFAULT_RULES, WATCHED, app, as_doc, county_day, problem
from yima_sdk import Context, Request, Response

DAY = re.compile(r"(\d{4}-\d{2}-\d{2}){2}")


class Rules(msgspec.Struct, forbid_unknown_fields=True):
    watched: bool
    limits: dict[str, int] = {}


@app.put("/authority/rules")
async def set_rules(ctx: Context, request: Request) -> Response:
    new = request.json(Rules)
    limits = {**DEFAULT_RULES["limits"], **new.limits}
    if set(limits) != set(WATCHED) or not all(0 <= n <= 100 for n in limits.values()):
        return problem(400, "medicine.bad_rules", f"limits are 0-100 boxes of {', '.join(WATCHED)}")
    value = {"watched": new.watched, "limits": limits}
    await ctx.storage.put("rules", value)
    await ctx.log.info("rules", by=await ctx.user.id(), watched=new.watched, limits=limits)
    return Response.json(value)


async def registrations_between(ctx: Context, request: Request) -> tuple[str, str, list[dict[str, Any]]]:
    today = county_day(time.time())
    first, last = request.query.get("from", today), request.query.get("to", today)
    rows: list[dict[str, Any]] = []
    after = None
    while True:
        page = await ctx.db.find("registrations", {"day": {"gte": first, "lte": last}}, order_by="day",
                                 limit=100, after=after)  # fmt: skip
        rows += [r.value for r in page.items if not request.query.get("class") or
                 r.value["class"] == request.query["class"]]  # fmt: skip
        after = page.cursor
        if after is None or len(rows) > 50_000:
            return first, last, rows


async def audited(ctx: Context, what: str, first: str, last: str, rows: int) -> None:
    """Each read of the registrations is one more record (and a log line): who read what, when."""
    reader = await ctx.user.id()
    at = int(time.time())
    await ctx.db.insert(
        "reads", {"reader": reader, "what": what, "from": first, "to": last, "rows": rows, "at": at}
    )
    await ctx.log.info("registrations read", reader=reader, what=what, first=first, last=last, rows=rows)


@app.get("/authority/registrations")
async def registrations(ctx: Context, request: Request) -> dict[str, Any]:
    """Watched-class boxes by class, day and pharmacy: purchases and residents (app-scoped ids, no ID numbers)."""
    first, last, rows = await registrations_between(ctx, request)
    groups: dict[tuple[str, str, str], dict[str, Any]] = {}
    for row in rows:
        group = groups.setdefault((row["day"], row["class"], row["pharmacy"]), {"boxes": 0, "sales": set()})
        group["boxes"] += row["boxes"]
        if row["kind"] == "sale":
            group["sales"].add(row["sale"])
    await audited(ctx, "summary", first, last, len(rows))
    return {"from": first, "to": last, "groups": [
        {"day": d, "class": c, "pharmacy": p, "boxes": g["boxes"], "sales": len(g["sales"])}
        for (d, c, p), g in sorted(groups.items())
    ]}  # fmt: skip


@app.get("/authority/registrations.csv")
async def registrations_csv(ctx: Context, request: Request) -> Response:
    """The registrations of the days asked, one row per watched item sold, voided or refunded, as a CSV
    download named after the days (`registrations-<from>-<to>.csv`)."""
    first, last, rows = await registrations_between(ctx, request)
    fields = ("day", "class", "pharmacy", "user_id", "drug", "boxes", "kind", "sale")
    await audited(ctx, "csv", first, last, len(rows))
    header = ["day", "class", "pharmacy", "resident", "drug", "boxes", "kind", "sale"]
    filename = f"registrations-{first}-{last}.csv" if DAY.fullmatch(first + last) else "registrations.csv"
    return Response.csv([header, *([r[f] for f in fields] for r in rows)], filename=filename)


@app.get("/authority/reads")
async def reads(ctx: Context, request: Request) -> dict[str, Any]:
    page = await ctx.db.find("reads", order_by="-at", limit=100)
    return {"reads": [as_doc(r) for r in page.items]}
