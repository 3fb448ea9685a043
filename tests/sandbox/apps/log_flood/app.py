"""Hostile (or careless) mini-app: writes logs without end, huge nested records, residents' numbers hidden in
nested fields, and keywords that pose as the record's own fields."""

import os

from yima_sdk import App, Context, Request

app = App()

JWT = "eyJhbGciOiJFZERTQSJ9.eyJzdWIiOiJhY2NvdW50OjEifQ.c2lnbmF0dXJl"


@app.get("/ok")
async def ok(ctx: Context, request: Request) -> dict:
    return {"ok": True, "pid": os.getpid()}


@app.get("/attack")
async def attack(ctx: Context, request: Request) -> dict:
    for i in range(int(request.query.get("n", "200"))):
        await ctx.log.info("line", i=i)
    return {"logged": True}


@app.get("/huge")
async def huge(ctx: Context, request: Request) -> dict:
    await ctx.log.info("huge", rows=[["x" * 1000] * 40] * 40)
    return {"logged": True}


@app.get("/pii")
async def pii(ctx: Context, request: Request) -> dict:
    await ctx.log.info(
        "visit",
        app="gov.guangde.fake",
        ts=0,
        level="debug",
        nested={
            "contact": {"who": "tel13800138000", "alt": "138 0013 8000", "fax": "139-0013-9000"},
            "people": [{"doc": "id11010519491231002Xok"}, {"doc": "110105 19491231 002X"}],
            "raw": 13700137000,
            "auth": JWT,
        },
    )
    return {"logged": True}
