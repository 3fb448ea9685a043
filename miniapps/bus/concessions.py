"""Concessions staff: eligibility granted to a rider (student, disability card, veteran) with an expiry, listed,
and revoked. A grant is `eligibility` `<rider>.<category>`; the fare engine reads its `expires_at`, so a
revocation ends it there: rides before it keep the concession, the next ride online and every later ride an
offline upload brings (settlement's charge given back by the rider's price) pay without it."""

from __future__ import annotations

import datetime as dt
import re
from typing import Annotated, Any

import msgspec
from common import app, problem, schedule
from yima_sdk import Context, InvalidArgument, Request, Response, VersionConflict
from yima_sdk.fares import FareError

GRANTABLE = ("student", "disability", "veteran")
"""What staff grant (the age bands come from the rider's consented birth date, never from staff)."""
HORIZON = dt.timedelta(days=5 * 366)
"""The furthest a grant reaches: a student's or a card holder's eligibility is checked again at least this often."""
RIDER_ID = re.compile(r"u_[a-z2-7]{26}")
"""The platform's app-scoped id: what the rider's page shows (`GET /me`)."""


class Grant(msgspec.Struct, forbid_unknown_fields=True):
    user_id: str
    category: str
    expires_at: dt.datetime


class Revocation(msgspec.Struct, forbid_unknown_fields=True):
    reason: Annotated[str, msgspec.Meta(min_length=1, max_length=200)]


def now_of(request: Request) -> dt.datetime:
    return request.received_at or dt.datetime.now(dt.UTC)


async def categories_priced(ctx: Context, at: dt.datetime) -> set[str]:
    """The concession categories of the table in force at `at` and of the versions after it."""
    fares = await schedule(ctx)
    tables = fares.tables
    try:
        current = fares.table_at(at).version
    except FareError:  # nothing in force yet: every version is to come
        current = None
    return {
        category
        for table in tables
        if current is None or table.version == current or table.effective_from > at
        for category in table.concessions
    }


async def known_rider(ctx: Context, user_id: str) -> bool:
    """A rider whose page showed them their id (`riders`, written by `GET /me`), or who has ridden."""
    if await ctx.db.get("riders", user_id) is not None:
        return True
    return bool((await ctx.db.find("rides", {"user_id": user_id}, limit=1)).items)


@app.post("/concessions/grants")
async def grant(ctx: Context, request: Request) -> Response:
    body = request.json(Grant)
    now = now_of(request)
    if body.category not in GRANTABLE:
        return problem(400, "bus.unknown_category", "grant student, disability or veteran")
    if body.category not in await categories_priced(ctx, now):
        return problem(400, "bus.unknown_category", f"the fare tables price no {body.category} concession")
    if body.expires_at.tzinfo is None:
        return problem(400, "bus.expiry_needs_zone", "expires_at needs a time zone")
    if body.expires_at <= now:
        return problem(400, "bus.expiry_in_past", "a grant expires in the future")
    if body.expires_at > now + HORIZON:
        return problem(400, "bus.expiry_too_far", "a grant lasts at most 5 years: grant again when checked")
    if not RIDER_ID.fullmatch(body.user_id):
        return problem(
            400, "bus.bad_rider_id", "the rider id is u_ and 26 letters or digits, as GET /me shows"
        )
    if not await known_rider(ctx, body.user_id):
        return problem(
            404,
            "bus.unknown_rider",
            "no rider with this id has opened 一码乘车: ask them to open it and read it",
        )
    value = {"user_id": body.user_id, "category": body.category, "expires_at": body.expires_at.isoformat(),
             "granted_by": await ctx.user.id(), "granted_at": now.isoformat()}  # fmt: skip
    doc_id = f"{body.user_id}.{body.category}"
    current = await ctx.db.get("eligibility", doc_id)
    try:
        if current is None:
            await ctx.db.insert("eligibility", value, id=doc_id)
        else:
            await ctx.db.update("eligibility", doc_id, value, expected_version=current.version)
    except VersionConflict:
        return problem(409, "bus.grant_changed", "the grant changed meanwhile: ask again")
    await ctx.log.info("concession granted", category=body.category, expires_at=value["expires_at"])
    return Response.json(shown(doc_id, value, now), status=201)


def shown(doc_id: str, value: dict[str, Any], now: dt.datetime) -> dict[str, Any]:
    active = dt.datetime.fromisoformat(value["expires_at"]) > now
    return {"id": doc_id, **value, "active": active}


@app.get("/concessions/grants")
async def grants(ctx: Context, request: Request) -> Response:
    """`?user_id=` (one rider's), `after=` (the previous page's `cursor`): every grant, active or not, 100 a page."""
    where = {"user_id": request.query["user_id"]} if request.query.get("user_id") else {}
    try:
        page = await ctx.db.find("eligibility", where, limit=100, after=request.query.get("after") or None)
    except InvalidArgument:
        return problem(400, "bus.bad_cursor", "after is the cursor of the previous page")
    now = now_of(request)
    return Response.json({"grants": [shown(r.id, r.value, now) for r in page.items], "cursor": page.cursor})


@app.post("/concessions/grants/{grant}/revoke")
async def revoke(ctx: Context, request: Request) -> Response:
    """End a grant now (`{"reason"}`): `expires_at` becomes the revocation's time, the granted expiry kept as
    `granted_until`. Revoking a revoked grant again answers it unchanged (a retried call does no harm)."""
    body = request.json(Revocation)
    doc_id = request.path_params["grant"]
    current = await ctx.db.get("eligibility", doc_id)
    if current is None:
        return problem(404, "bus.grant_not_found", "no such grant")
    now = now_of(request)
    if current.value.get("revoked_at") is not None:
        return Response.json(shown(doc_id, current.value, now))
    ends = min(dt.datetime.fromisoformat(current.value["expires_at"]), now)
    value = {**current.value, "expires_at": ends.isoformat(), "granted_until": current.value["expires_at"],
             "revoked_at": now.isoformat(), "revoked_by": await ctx.user.id(), "revoke_reason": body.reason}  # fmt: skip
    try:
        await ctx.db.update("eligibility", doc_id, value, expected_version=current.version)
    except VersionConflict:
        return problem(409, "bus.grant_changed", "the grant changed meanwhile: ask again")
    await ctx.log.info("concession revoked", category=value["category"])
    return Response.json(shown(doc_id, value, now))
