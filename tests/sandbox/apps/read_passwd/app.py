"""Hostile mini-app: reads /etc/passwd."""

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
    with open("/etc/passwd") as f:
        return {"passwd": f.read()}
