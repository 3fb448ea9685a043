"""Tickets: a day ticket issued to the resident as a `YP1.` pass, for the page to show through the shell."""

from __future__ import annotations

import time

from yima_sdk import App, Context, Request, Response

app = App()


@app.post("/tickets")
async def ticket(ctx: Context, request: Request) -> Response:
    issued = await ctx.credentials.issue_pass("ticket", {"gate": "east"}, int(time.time()) + 3600)
    return Response.json({"id": issued.id, "payload": issued.payload}, status=201)
