"""Hostile mini-app: lists the server data folder and reads the master key (path given by the test)."""

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
    target = request.json()
    listing = os.listdir(target["folder"]) if target.get("list") else None
    with open(target["file"], "rb") as f:
        return {"listing": listing, "key": f.read().hex()}
