"""County library: list books, reserve one copy (never more reservations than copies), get a pickup pass,
and have the front-desk counter terminal show the reservation when the resident's code is scanned."""

from __future__ import annotations

import time
from typing import Any

from yima_sdk import App, ConsentDenied, Context, CounterOutOfRange, Request, Response, ScanEvent

app = App()

BOOKS = {
    "b1": {"title": "Guangde county annals", "copies": 2},
    "b2": {"title": "Bamboo of Anhui", "copies": 1},
}


@app.get("/books")
async def books(ctx: Context, request: Request) -> list[dict[str, Any]]:
    out = []
    for book_id, book in BOOKS.items():
        taken = await ctx.storage.counter_get(f"reserved:{book_id}")
        out.append({"id": book_id, "title": book["title"], "available": book["copies"] - taken})
    return out


@app.post("/books/{book_id}/reserve")
async def reserve(ctx: Context, request: Request) -> Response:
    book_id = request.path_params["book_id"]
    book = BOOKS.get(book_id)
    if book is None:
        return Response.json({"code": "library.no_such_book"}, status=404)
    me = await ctx.user.id()
    if await ctx.storage.get(f"reservation:{me}:{book_id}") is not None:
        return Response.json({"code": "library.already_reserved"}, status=409)
    try:
        await ctx.storage.counter_add(f"reserved:{book_id}", 1, max=book["copies"])
    except CounterOutOfRange:
        return Response.json({"code": "library.no_copy_left"}, status=409)
    await ctx.storage.put(f"reservation:{me}:{book_id}", {"book": book_id, "at": int(time.time())})
    ticket = await ctx.credentials.issue_pass("pickup", {"book": book_id}, int(time.time()) + 7 * 86400)
    await ctx.notify.send("Book reserved", f"{book['title']}: pick it up within 7 days")
    await ctx.log.info("reserved", book=book_id)
    return Response.json({"book": book_id, "pickup_pass": ticket.payload}, status=201)


@app.get("/me/name")
async def my_name(ctx: Context, request: Request) -> Response:
    try:
        return Response.json({"name": await ctx.user.scope("real_name_masked")})
    except ConsentDenied:
        return Response.json(
            {"code": "consent.denied", "detail": "allow the name check to see it here"}, status=403
        )


@app.on_scan("counter")
async def front_desk(ctx: Context, event: ScanEvent) -> dict[str, list[str]]:
    page = await ctx.storage.list(prefix=f"reservation:{event.user_id}:")
    titles = [BOOKS[d.value["book"]]["title"] for d in page.items]
    return {"lines": [f"Reserved: {t}" for t in titles] or ["No reservations"]}
