"""Reviews by visitors who entered the spot, and the rating they make."""

from __future__ import annotations

from typing import Any

import msgspec
from common import app, county_now, problem
from yima_sdk import Context, Request, Response, VersionConflict


class Review(msgspec.Struct, forbid_unknown_fields=True):
    stars: int
    text: str = ""


@app.post("/spots/{spot}/reviews")
async def review(ctx: Context, request: Request) -> Response:
    body = request.json(Review)
    if not 1 <= body.stars <= 5 or len(body.text) > 500:
        return problem(400, "tourism.bad_review", "1 to 5 stars and at most 500 characters")
    user_id = await ctx.user.id()
    spot = request.path_params["spot"]
    if user_id is None or not await _entered(ctx, user_id, spot):
        return problem(403, "tourism.not_a_visitor", "only visitors who entered the spot review it")
    review_id = f"{spot}.{user_id}"
    value = {"spot": spot, "user_id": user_id, "stars": body.stars, "text": body.text,
             "at": int(county_now().timestamp())}  # fmt: skip
    for _ in range(3):
        old = await ctx.db.get("reviews", review_id)
        try:
            async with ctx.db.transaction() as tx:  # the rating's counters move with the review
                if old is None:
                    tx.insert("reviews", value, id=review_id)
                    tx.counter_add(f"reviews:{spot}", 1)
                else:
                    tx.update("reviews", review_id, value, expected_version=old.version)
                tx.counter_add(f"stars:{spot}", body.stars - (old.value["stars"] if old else 0))
        except VersionConflict:
            continue
        return Response.json({"id": review_id, **value}, status=201 if old is None else 200)
    return problem(409, "tourism.changed", "your review changed meanwhile: try again")


async def _entered(ctx: Context, user_id: str, spot: str) -> bool:
    tickets = await ctx.db.find("tickets", {"user_id": user_id, "spot": spot}, limit=50)
    if any(r.value["entered"] for r in tickets.items):
        return True
    orders = await ctx.db.find("orders", {"user_id": user_id}, limit=50)
    return any(r.value["entered"].get(spot) for r in orders.items)


@app.get("/spots/{spot}/reviews")
async def reviews(ctx: Context, request: Request) -> dict[str, Any]:
    page = await ctx.db.find(
        "reviews", {"spot": request.path_params["spot"]}, limit=50, after=request.query.get("after")
    )
    return {
        "reviews": [
            {"stars": r.value["stars"], "text": r.value["text"], "at": r.value["at"]} for r in page.items
        ],
        "next": page.cursor,
    }
