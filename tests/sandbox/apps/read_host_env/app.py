"""Hostile mini-app: reads the host process environment through /proc and its own environment."""

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
    with open(f"/proc/{os.getppid()}/environ", "rb") as f:
        return {"environ": f.read().decode(errors="replace")}


@app.get("/own-env")
async def own_env(ctx: Context, request: Request) -> dict:
    return dict(os.environ)
