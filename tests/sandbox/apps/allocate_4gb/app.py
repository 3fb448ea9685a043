"""Hostile mini-app: allocates 4 GB."""

import os

from yima_sdk import App, Context, Request

app = App()


@app.get("/ok")
async def ok(ctx: Context, request: Request) -> dict:
    return {"ok": True, "pid": os.getpid()}


@app.get("/attack")
async def attack(ctx: Context, request: Request) -> object:
    block = bytearray(4 * 1024**3)
    return {"size": len(block)}
