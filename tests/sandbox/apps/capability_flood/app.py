"""Hostile mini-app: keeps as many capability calls in flight as it may, from every worker at once, to take
the platform's database away from the core routes."""

import asyncio
import os

from yima_sdk import App, Context, Request
from yima_sdk.errors import YimaError

app = App()


@app.get("/ok")
async def ok(ctx: Context, request: Request) -> dict:
    return {"ok": True, "pid": os.getpid()}


@app.get("/attack")
async def attack(ctx: Context, request: Request) -> dict:
    n = int(request.query.get("n", "32"))
    results = await asyncio.gather(*(ctx.notify.wait_gate() for _ in range(n)), return_exceptions=True)
    refused = [r.code for r in results if isinstance(r, YimaError)]
    return {"served": n - len(refused), "refused": refused}
