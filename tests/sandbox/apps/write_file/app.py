"""Hostile mini-app: writes files: in /tmp, and inside its own folder."""

# hostile on purpose; blocking the event loop is the least of its sins
# ruff: noqa: ASYNC230
import os

from yima_sdk import App, Context, Request

app = App()


@app.get("/ok")
async def ok(ctx: Context, request: Request) -> dict:
    return {"ok": True, "pid": os.getpid()}


@app.get("/attack")
async def attack(ctx: Context, request: Request) -> object:
    where = request.query.get("where", "/tmp/yima-escape.txt")
    with open(where, "w") as f:
        f.write("escaped")
    return {"written": where}
